"""Retrying a finished job's failures: exactly those items, credits and stats exact."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from core.database import Database
from core.retry import retry_failures
from core.settings import SandboxOptions, Settings
from core.users import NewUser, create_user
from harness.outbox import apply_pending
from reconcile.sweep import take_back_expired
from tests.support.inline import RecordedEnqueue, app_settings, process_job
from tests.support.state import assert_invariants
from web.app import create_app
from worker.turns import TurnPolicy, take_turn

PRICE = 2


@pytest.fixture(scope="module")
def lossy_settings(database_url: str, redis_url: str) -> Settings:
    return app_settings(
        database_url, redis_url, sandbox=SandboxOptions(failure_rate=0.3), price=PRICE
    )


@pytest.fixture(scope="module")
def shared_client(lossy_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(lossy_settings, enqueue=RecordedEnqueue())) as test_client:
        yield test_client


@pytest.fixture
def client(shared_client: TestClient, db: Database) -> TestClient:
    return shared_client


def auth(user: NewUser) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}"}


def finished_job(
    client: TestClient, db: Database, settings: Settings, user: NewUser, count: int
) -> dict[str, object]:
    answer = client.post("/api/jobs", json={"count": count}, headers=auth(user))
    assert answer.status_code == 202, answer.text
    process_job(db, settings, uuid.UUID(answer.json()["id"]))
    job: dict[str, object] = client.get(
        f"/api/job/{answer.json()['id']}", headers=auth(user)
    ).json()
    return job


def missing_slots(db: Database, job_id: object, requested: int) -> list[int]:
    with db.engine.connect() as connection:
        made = {
            r.item_index
            for r in connection.execute(
                text("SELECT item_index FROM user_accounts WHERE job_id = :j"), {"j": job_id}
            )
        }
    return [i for i in range(requested) if i not in made]


def balance(db: Database, user: NewUser) -> int:
    with db.engine.connect() as connection:
        return int(
            connection.execute(
                text("SELECT balance FROM user_credits WHERE user_id = :u"), {"u": user.user_id}
            ).scalar_one()
        )


def test_a_retry_makes_exactly_the_failed_items_and_keeps_stats_and_credits_exact(
    client: TestClient, db: Database, lossy_settings: Settings
) -> None:
    user = create_user(db.sessions, "ria", credits=1000)
    parent = finished_job(client, db, lossy_settings, user, 100)
    failures = int(str(parent["failures"]))
    assert failures > 0
    before = balance(db, user)
    answer = client.post(f"/api/job/{parent['id']}/retry", headers=auth(user))
    assert answer.status_code == 201, answer.text
    child = answer.json()
    assert child["requested"] == failures
    assert child["retry_of"] == parent["id"]
    assert balance(db, user) == before - failures * PRICE
    with db.engine.connect() as connection:
        indices = connection.execute(
            text("SELECT parent_indices FROM job_retries WHERE child_job_id = :c"),
            {"c": child["id"]},
        ).scalar_one()
    assert indices == missing_slots(db, parent["id"], 100)
    again = client.post(f"/api/job/{parent['id']}/retry", headers=auth(user))
    assert again.status_code == 200
    assert again.json()["id"] == child["id"]
    assert balance(db, user) == before - failures * PRICE
    process_job(db, lossy_settings, uuid.UUID(child["id"]))
    linked = client.get(f"/api/job/{parent['id']}", headers=auth(user)).json()
    assert linked["retried_by"] == child["id"]
    done = client.get(f"/api/job/{child['id']}", headers=auth(user)).json()
    assert done["status"] == "completed"
    assert done["retry_of"] == parent["id"]
    apply_pending(db.sessions)
    stats = client.get("/api/stats", headers=auth(user)).json()
    assert stats["requested"] == 100 + failures
    assert stats["successful"] == int(str(parent["successful"])) + done["successful"]
    assert balance(db, user) == 1000 - PRICE * stats["successful"]
    assert_invariants(db)


def test_a_parent_etag_changes_when_it_is_retried(
    client: TestClient, db: Database, lossy_settings: Settings
) -> None:
    user = create_user(db.sessions, "sam", credits=1000)
    parent = finished_job(client, db, lossy_settings, user, 40)
    first = client.get(f"/api/job/{parent['id']}", headers=auth(user))
    assert first.headers["cache-control"] == "no-cache"
    client.post(f"/api/job/{parent['id']}/retry", headers=auth(user))
    second = client.get(
        f"/api/job/{parent['id']}", headers={**auth(user), "If-None-Match": first.headers["etag"]}
    )
    assert second.status_code == 200
    assert second.json()["retried_by"] is not None


def test_retries_that_cannot_be_made_are_refused(
    client: TestClient, db: Database, lossy_settings: Settings
) -> None:
    user = create_user(db.sessions, "tia", credits=1000)
    other = create_user(db.sessions, "uma", credits=1000)
    parent = finished_job(client, db, lossy_settings, user, 50)
    assert client.post(f"/api/job/{parent['id']}/retry", headers=auth(other)).status_code == 404
    running = client.post("/api/jobs", json={"count": 5}, headers=auth(user)).json()
    busy = client.post(f"/api/job/{running['id']}/retry", headers=auth(user))
    assert busy.status_code == 409
    perfect = finished_job(
        client, db, lossy_settings.with_changes(sandbox=SandboxOptions()), user, 1
    )
    assert perfect["failures"] == 0
    clean = client.post(f"/api/job/{perfect['id']}/retry", headers=auth(user))
    assert clean.status_code == 409
    poor = create_user(db.sessions, "vic", credits=100)
    lossy = finished_job(client, db, lossy_settings, poor, 50)
    spend = {"count": lossy["failures"]}
    assert client.post("/api/jobs", json=spend, headers=auth(poor)).status_code == 202
    short = client.post(f"/api/job/{lossy['id']}/retry", headers=auth(poor))
    assert short.status_code == 402, short.text
    assert client.post("/api/job/not-a-uuid/retry", headers=auth(user)).status_code == 400


def sandbox_external_id(key: str) -> str:
    """The external id the sandbox derives from a provider key."""
    return "sbx_" + hashlib.sha256(key.encode("utf-8")).digest()[:8].hex()


def external_ids(db: Database, job_id: object) -> dict[int, str]:
    with db.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT item_index, external_id FROM user_accounts WHERE job_id = :j"),
            {"j": job_id},
        )
        return {r.item_index: r.external_id for r in rows}


def slot_keys(db: Database, table: str, job_id: object) -> dict[int, str]:
    with db.engine.connect() as connection:
        rows = connection.execute(
            text(f"SELECT item_index, provider_key FROM {table} WHERE job_id = :j"),
            {"j": job_id},
        )
        return {r.item_index: r.provider_key for r in rows}


def test_slots_whose_calls_went_unanswered_are_retried_with_their_first_keys(
    client: TestClient, db: Database, lossy_settings: Settings
) -> None:
    """Calls that time out may have created the account: the parent's keys travel to its
    retry, and to the retry's retry, so the provider is asked for the same account."""
    user = create_user(db.sessions, "wes", credits=1000)
    silent = lossy_settings.with_changes(sandbox=SandboxOptions(transient_rate=1.0))
    answering = lossy_settings.with_changes(sandbox=SandboxOptions())
    parent = finished_job(client, db, silent, user, 12)
    assert (parent["successful"], parent["failures"]) == (0, 12)
    first_keys = {i: f"{parent['id']}:{i}" for i in range(12)}
    assert slot_keys(db, "ambiguous_items", parent["id"]) == first_keys

    child = client.post(f"/api/job/{parent['id']}/retry", headers=auth(user)).json()
    assert slot_keys(db, "kept_keys", child["id"]) == first_keys
    process_job(db, silent, uuid.UUID(child["id"]))
    assert slot_keys(db, "ambiguous_items", child["id"]) == first_keys

    grandchild = client.post(f"/api/job/{child['id']}/retry", headers=auth(user)).json()
    process_job(db, answering, uuid.UUID(grandchild["id"]))
    made = external_ids(db, grandchild["id"])
    assert made == {i: sandbox_external_id(key) for i, key in first_keys.items()}
    apply_pending(db.sessions)
    assert balance(db, user) == 1000 - 12 * PRICE
    assert_invariants(db)


def test_refused_slots_are_retried_with_keys_of_their_own(
    client: TestClient, db: Database, lossy_settings: Settings
) -> None:
    """A refusal is an answer: the provider made nothing, so the retry asks anew."""
    user = create_user(db.sessions, "xia", credits=1000)
    parent = finished_job(client, db, lossy_settings, user, 60)
    assert int(str(parent["failures"])) > 0
    assert slot_keys(db, "ambiguous_items", parent["id"]) == {}
    child = client.post(f"/api/job/{parent['id']}/retry", headers=auth(user)).json()
    assert slot_keys(db, "kept_keys", child["id"]) == {}
    process_job(db, lossy_settings, uuid.UUID(child["id"]))
    made = external_ids(db, child["id"])
    assert made == {i: sandbox_external_id(f"{child['id']}:{i}") for i in made}


def test_a_slice_given_up_after_its_attempts_keeps_its_keys_for_the_retry(
    client: TestClient, db: Database, lossy_settings: Settings
) -> None:
    """An attempt that lost its lease may have called the provider for any of its slots: a
    slice given up after its last attempt counts its items failed, their first keys kept."""
    user = create_user(db.sessions, "yan", credits=1000)
    answer = client.post("/api/jobs", json={"count": 8}, headers=auth(user))
    job_id = uuid.UUID(answer.json()["id"])
    one_attempt = lossy_settings.with_changes(slice_max_attempts=1)
    policy = TurnPolicy.from_settings(one_attempt)
    assert len(take_turn(db.sessions, policy, lease=30).claims) == 1  # its worker then dies
    with db.engine.begin() as connection:
        connection.execute(
            text("UPDATE job_slices SET lease_expires_at = now() WHERE job_id = :j"),
            {"j": job_id},
        )
    assert take_back_expired(db.sessions).slices == 1
    process_job(db, one_attempt, job_id)  # the second attempt is past the limit

    job = client.get(f"/api/job/{job_id}", headers=auth(user)).json()
    assert (job["status"], job["successful"], job["failures"]) == ("completed", 0, 8)
    first_keys = {i: f"{job_id}:{i}" for i in range(8)}
    assert slot_keys(db, "ambiguous_items", job_id) == first_keys
    child = client.post(f"/api/job/{job_id}/retry", headers=auth(user)).json()
    assert slot_keys(db, "kept_keys", child["id"]) == first_keys
    apply_pending(db.sessions)
    assert_invariants(db)


def test_two_retries_at_once_make_one_child_with_its_keys_once(
    client: TestClient, db: Database, lossy_settings: Settings
) -> None:
    """A retry sent twice at once (a double click, a client's own retry) races on the
    database: both answer the same child, held once, whose kept keys are written once."""
    user = create_user(db.sessions, "yan", credits=1000)
    silent = lossy_settings.with_changes(sandbox=SandboxOptions(transient_rate=1.0))
    parent = finished_job(client, db, silent, user, 8)
    parent_id = uuid.UUID(str(parent["id"]))
    before = balance(db, user)
    start = threading.Barrier(2)

    def retry() -> uuid.UUID:
        start.wait()
        return retry_failures(db.sessions, silent, user.user_id, parent_id).job.id

    with ThreadPoolExecutor(2) as pool:
        children = list(pool.map(lambda _: retry(), range(2)))
    assert children[0] == children[1]
    assert slot_keys(db, "kept_keys", children[0]) == {i: f"{parent_id}:{i}" for i in range(8)}
    assert balance(db, user) == before - 8 * PRICE
    with db.engine.connect() as connection:
        links = connection.execute(
            text("SELECT count(*) FROM job_retries WHERE parent_job_id = :p"), {"p": parent_id}
        ).scalar_one()
    assert links == 1
