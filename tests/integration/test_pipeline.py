"""The pipeline end to end: HTTP submit -> Redis -> Dramatiq worker -> outbox -> stats."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from core.database import Database
from core.settings import SandboxOptions, Settings
from core.users import NewUser, create_user
from harness.outbox import apply_pending
from harness.waiting import wait_for
from tests.integration.conftest import WorkerRunner
from tests.support.state import assert_invariants, wait_all_terminal
from web.app import create_app


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def user(db: Database) -> NewUser:
    return create_user(db.sessions, "alice", credits=100_000)


def auth(user: NewUser) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}"}


@pytest.mark.parametrize("counts", [[1], [7], [3000, 7, 1]])
def test_jobs_complete_and_every_invariant_holds(
    client: TestClient,
    db: Database,
    user: NewUser,
    run_worker: WorkerRunner,
    counts: list[int],
) -> None:
    sandbox = SandboxOptions(failure_rate=0.2)
    with run_worker(sandbox=sandbox):
        ids = []
        for count in counts:
            answer = client.post("/api/jobs", json={"count": count}, headers=auth(user))
            assert answer.status_code == 202, answer.text
            assert answer.headers["location"] == f"/api/job/{answer.json()['id']}"
            ids.append(answer.json()["id"])
        wait_all_terminal(db, timeout=60)
    jobs = [client.get(f"/api/job/{job_id}", headers=auth(user)).json() for job_id in ids]
    assert all(job["status"] == "completed" for job in jobs)
    assert [job["requested"] for job in jobs] == counts
    assert all(job["successful"] + job["failures"] == job["requested"] for job in jobs)
    if sum(counts) > 100:
        assert sum(j["failures"] for j in jobs) > 0 and sum(j["successful"] for j in jobs) > 0
    apply_pending(db.sessions)
    stats = client.get("/api/stats", headers=auth(user)).json()
    assert stats["requested"] == sum(counts)
    assert stats["successful"] == sum(j["successful"] for j in jobs)
    assert stats["failures"] == sum(j["failures"] for j in jobs)
    assert stats["business_centers"] == stats["successful"]
    vault = client.get("/api/accounts", headers=auth(user)).json()
    assert vault["total"] == stats["successful"]
    assert all(a["metadata"] == {"provider": "sandbox"} for a in vault["items"])
    balance = client.get("/api/credits", headers=auth(user)).json()["balance"]
    assert balance == 100_000 - stats["successful"]
    assert_invariants(db)


def test_job_status_moves_from_queued_to_completed(
    client: TestClient, db: Database, user: NewUser, run_worker: WorkerRunner
) -> None:
    job = client.post("/api/jobs", json={"count": 20}, headers=auth(user)).json()
    assert job["status"] == "queued" and job["started_at"] is None
    with run_worker():

        def completed() -> dict[str, object] | None:
            status = client.get(f"/api/job/{job['id']}", headers=auth(user)).json()
            return status if status["status"] == "completed" else None

        done = wait_for(completed, timeout=30)
    assert done["progress"] == 1.0
    assert done["started_at"] is not None and done["finished_at"] is not None
