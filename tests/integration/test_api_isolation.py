"""A user sees and touches only their own jobs, stats, credits and vault (invariant 6)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select, text
from starlette.routing import Route
from starlette.testclient import TestClient

from core.crypto import SecretBox
from core.database import Database
from core.schema import UserAccount
from core.settings import SandboxOptions, Settings
from core.users import NewUser, create_user, issue_token, revoke_tokens
from harness.outbox import apply_pending
from tests.support.inline import RecordedEnqueue, app_settings, process_job
from tests.support.state import assert_invariants, totals
from web.app import create_app, routes

CREDITS = 1_000


@dataclass
class Owner:
    """A user with the jobs they submitted through the API."""

    user: NewUser
    job_ids: list[str]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.user.token}"}


@pytest.fixture(scope="module")
def lossy_settings(database_url: str, redis_url: str) -> Settings:
    return app_settings(database_url, redis_url, sandbox=SandboxOptions(failure_rate=0.2))


@pytest.fixture(scope="module")
def shared_client(lossy_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(lossy_settings, enqueue=RecordedEnqueue())) as test_client:
        yield test_client


@pytest.fixture
def client(shared_client: TestClient, db: Database) -> TestClient:
    return shared_client


def submit_and_run(
    client: TestClient, db: Database, settings: Settings, name: str, counts: list[int]
) -> Owner:
    owner = Owner(create_user(db.sessions, name, credits=CREDITS), [])
    for count in counts:
        answer = client.post("/api/jobs", json={"count": count}, headers=owner.headers)
        assert answer.status_code == 202, answer.text
        owner.job_ids.append(answer.json()["id"])
        process_job(db, settings, uuid.UUID(answer.json()["id"]))
    return owner


@pytest.fixture
def alice(client: TestClient, db: Database, lossy_settings: Settings) -> Owner:
    return submit_and_run(client, db, lossy_settings, "alice", [60, 12])


@pytest.fixture
def bob(client: TestClient, db: Database, lossy_settings: Settings, alice: Owner) -> Owner:
    owner = submit_and_run(client, db, lossy_settings, "bob", [9])
    apply_pending(db.sessions)
    return owner


def get_json(client: TestClient, path: str, owner: Owner) -> dict[str, Any]:
    answer = client.get(path, headers=owner.headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def account_ids(db: Database, user_id: uuid.UUID) -> list[uuid.UUID]:
    with db.sessions() as session:
        return list(
            session.scalars(select(UserAccount.id).where(UserAccount.user_id == user_id)).all()
        )


def job_sums(db: Database, user_id: uuid.UUID) -> dict[str, int]:
    with db.engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT sum(requested) AS requested, sum(successful) AS successful, "
                "sum(failures) AS failures FROM jobs WHERE user_id = :u"
            ),
            {"u": user_id},
        ).one()
    return {"requested": row.requested, "successful": row.successful, "failures": row.failures}


def api_routes() -> list[tuple[str, str]]:
    """(method, path template) of every /api/ route the app serves."""
    found: list[tuple[str, str]] = []
    for route in routes():
        if isinstance(route, Route) and route.path.startswith("/api/"):
            found.extend((m, route.path) for m in sorted(route.methods or ()) if m != "HEAD")
    return found


JOB_PATHS = [path for method, path in api_routes() if method == "GET" and "{job_id}" in path]


@pytest.mark.parametrize("template", [*JOB_PATHS, "/api/job/{job_id}?wait=2"])
def test_another_users_job_answers_404_like_a_missing_one(
    client: TestClient, alice: Owner, bob: Owner, template: str
) -> None:
    mine, theirs = template.format(job_id=alice.job_ids[0]), template.format(job_id=uuid.uuid4())
    assert client.get(mine, headers=alice.headers).status_code == 200
    foreign = client.get(mine, headers=bob.headers)
    missing = client.get(theirs, headers=bob.headers)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()
    assert foreign.json()["error"]["code"] == "not_found"
    assert alice.job_ids[0] not in foreign.text


def test_a_known_etag_does_not_unlock_another_users_job(
    client: TestClient, alice: Owner, bob: Owner
) -> None:
    own = client.get(f"/api/job/{alice.job_ids[0]}", headers=alice.headers)
    etag = own.headers["etag"]
    assert (
        client.get(
            f"/api/job/{alice.job_ids[0]}", headers={**alice.headers, "If-None-Match": etag}
        ).status_code
        == 304
    )
    foreign = client.get(
        f"/api/job/{alice.job_ids[0]}", headers={**bob.headers, "If-None-Match": etag}
    )
    assert foreign.status_code == 404
    assert "etag" not in foreign.headers


def test_job_lists_hold_only_the_callers_jobs(client: TestClient, alice: Owner, bob: Owner) -> None:
    for owner in (alice, bob):
        listed = get_json(client, "/api/jobs", owner)
        assert sorted(j["id"] for j in listed["items"]) == sorted(owner.job_ids)
        assert listed["total"] == len(owner.job_ids)


def test_vault_lists_hold_only_the_callers_accounts(
    client: TestClient, db: Database, alice: Owner, bob: Owner
) -> None:
    for owner, other in ((alice, bob), (bob, alice)):
        listed = get_json(client, "/api/accounts?limit=100", owner)
        ids = {a["id"] for a in listed["items"]}
        assert ids == {str(i) for i in account_ids(db, owner.user.user_id)}
        assert ids.isdisjoint(str(i) for i in account_ids(db, other.user.user_id))
        assert {a["job_id"] for a in listed["items"]} <= set(owner.job_ids)
        assert listed["total"] == job_sums(db, owner.user.user_id)["successful"]


def test_credits_show_only_the_callers_balance_and_ledger(
    client: TestClient, db: Database, alice: Owner, bob: Owner
) -> None:
    for owner in (alice, bob):
        view = get_json(client, "/api/credits?limit=100", owner)
        assert view["balance"] == CREDITS - job_sums(db, owner.user.user_id)["successful"]
        assert {e["job_id"] for e in view["entries"]} == {None, *owner.job_ids}
        # One grant, then a hold and a release per job.
        assert len(view["entries"]) == 1 + 2 * len(owner.job_ids)


def test_stats_show_only_the_callers_figures(
    client: TestClient, db: Database, alice: Owner, bob: Owner
) -> None:
    for owner in (alice, bob):
        stats = get_json(client, "/api/stats", owner)
        expected = job_sums(db, owner.user.user_id)
        assert stats == {
            "user_id": str(owner.user.user_id),
            **expected,
            "business_centers": expected["successful"],
        }
    assert_invariants(db)


def test_another_users_account_cannot_be_deleted_or_revealed(
    client: TestClient, db: Database, lossy_settings: Settings, alice: Owner, bob: Owner
) -> None:
    target = account_ids(db, alice.user.user_id)[0]
    before = totals(db)
    deleted = client.delete(f"/api/accounts/{target}", headers=bob.headers)
    revealed = client.post(f"/api/accounts/{target}/reveal", headers=bob.headers)
    assert deleted.status_code == revealed.status_code == 404
    assert deleted.json()["error"]["code"] == revealed.json()["error"]["code"] == "not_found"
    assert totals(db) == before
    with db.sessions() as session:
        row = session.get(UserAccount, target)
        assert row is not None and row.deleted_at is None
        secret = SecretBox(lossy_settings.fernet_key).open(row.secret_encrypted)
    assert secret not in revealed.text
    own = client.post(f"/api/accounts/{target}/reveal", headers=alice.headers)
    assert own.status_code == 200 and own.json()["secret"] == secret
    assert client.delete(f"/api/accounts/{target}", headers=alice.headers).status_code == 204


@pytest.fixture
def revoked_token(db: Database) -> str:
    victim = create_user(db.sessions, "revoked", credits=CREDITS)
    assert revoke_tokens(db.sessions, victim.user_id) == 1
    return victim.token


def bad_credentials(revoked_token: str, real_token: str) -> list[dict[str, str]]:
    return [
        {},
        {"Authorization": "Bearer tly_not-a-real-token"},
        {"Authorization": f"Basic {real_token}"},
        {"Authorization": real_token},
        {"Authorization": "Bearer "},
        {"Authorization": f"Bearer {revoked_token}"},
    ]


@pytest.mark.parametrize(("method", "path"), api_routes())
def test_every_endpoint_answers_401_without_a_valid_token(
    client: TestClient,
    db: Database,
    settings: Settings,
    revoked_token: str,
    method: str,
    path: str,
) -> None:
    alice = submit_and_run(client, db, settings, "alice", [3])
    url = path.format(
        job_id=alice.job_ids[0],
        account_id=account_ids(db, alice.user.user_id)[0],
        report_id=1,
        user_id=alice.user.user_id,
        token_id=alice.user.token_id,
        endpoint_id=uuid.uuid4(),
        delivery_id=1,
    )
    before = totals(db)
    for headers in bad_credentials(revoked_token, alice.user.token):
        answer = client.request(method, url, headers=headers, json={"count": 1})
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.json()["error"]["code"] == "unauthorized"
    assert totals(db) == before


def test_a_new_token_works_after_the_old_ones_were_revoked(
    client: TestClient, db: Database
) -> None:
    user = create_user(db.sessions, "carol")
    revoke_tokens(db.sessions, user.user_id)
    fresh = issue_token(db.sessions, user.user_id, "second")
    assert (
        client.get("/api/stats", headers={"Authorization": f"Bearer {user.token}"}).status_code
        == 401
    )
    answer = client.get("/api/stats", headers={"Authorization": f"Bearer {fresh}"})
    assert answer.status_code == 200
    assert answer.json()["user_id"] == str(user.user_id)


def test_a_new_user_sees_nothing_of_anyone_else(
    client: TestClient, db: Database, alice: Owner, bob: Owner
) -> None:
    carol = Owner(create_user(db.sessions, "carol"), [])
    assert get_json(client, "/api/jobs", carol) == {
        "items": [],
        "total": 0,
        "limit": 20,
        "next": None,
        "next_cursor": None,
    }
    assert get_json(client, "/api/accounts", carol)["items"] == []
    empty = {
        "balance": 0,
        "entries": [],
        "total": 0,
        "limit": 20,
        "next": None,
        "next_cursor": None,
    }
    assert get_json(client, "/api/credits", carol) == empty
    assert get_json(client, "/api/stats", carol) == {
        "user_id": str(carol.user.user_id),
        "requested": 0,
        "successful": 0,
        "failures": 0,
        "business_centers": 0,
    }
