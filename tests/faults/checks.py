"""What every fault test checks once its faults stop, and how long recovery took."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import httpx
from sqlalchemy import text

from core.database import Database
from harness.waiting import wait_for
from tests.support.state import assert_invariants, pending_outbox, unfinished_jobs

# Generous upper bound on recovery in these tests; the measured figure is printed.
RECOVERY_TIMEOUT = 90.0
TURN_MESSAGES = "dramatiq:turns.msgs"
DELAYED_MESSAGES = "dramatiq:turns.DQ.msgs"


def submit(url: str, token: str, counts: Sequence[int]) -> list[uuid.UUID]:
    """Submit one job per count over HTTP; return their ids."""
    headers = {"Authorization": f"Bearer {token}"}
    ids = []
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for count in counts:
            answer = client.post("/api/jobs", json={"count": count})
            assert answer.status_code == 202, answer.text
            ids.append(uuid.UUID(answer.json()["id"]))
    return ids


def settle(db: Database, since: float, label: str, after: str = "the last fault") -> float:
    """Wait until every job is terminal and the daemon applied the outbox; print the time."""
    wait_for(lambda: unfinished_jobs(db) == 0, RECOVERY_TIMEOUT, interval=0.05)
    terminal = time.monotonic() - since
    wait_for(lambda: pending_outbox(db) == 0, RECOVERY_TIMEOUT, interval=0.05)
    applied = time.monotonic() - since
    print(
        f"\n[recovery] {label}: every job terminal {terminal:.1f} s and stats applied "
        f"{applied:.1f} s after {after}"
    )
    return terminal


def assert_exact(db: Database, *, all_successful: bool) -> None:
    """Every job terminal, no vault slot twice, every invariant (the checker) holds."""
    assert unfinished_jobs(db) == 0
    assert duplicate_slots(db) == []
    if all_successful:
        assert jobs_short_of_requested(db) == []
    assert_invariants(db)


def duplicate_slots(db: Database) -> list[tuple[uuid.UUID, int]]:
    """Vault slots (job, item) that hold more than one account."""
    query = text(
        "SELECT job_id, item_index FROM user_accounts "
        "GROUP BY job_id, item_index HAVING count(*) > 1"
    )
    with db.engine.connect() as connection:
        return [(r.job_id, r.item_index) for r in connection.execute(query)]


def jobs_short_of_requested(db: Database) -> list[tuple[uuid.UUID, str, int, int]]:
    """Jobs that did not end completed with every requested account created."""
    query = text(
        "SELECT id, status, requested, successful FROM jobs "
        "WHERE status <> 'completed' OR successful <> requested"
    )
    with db.engine.connect() as connection:
        return [(r.id, r.status, r.requested, r.successful) for r in connection.execute(query)]


def reclaimed_slices(db: Database) -> int:
    """Slices that were claimed more than once (their first attempt was lost)."""
    query = text("SELECT count(*) FROM job_slices WHERE attempts > 1")
    with db.engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def slice_states(db: Database) -> dict[str, int]:
    """How many slices are pending, running and done."""
    query = text("SELECT status, count(*) AS n FROM job_slices GROUP BY status")
    with db.engine.connect() as connection:
        return {r.status: int(r.n) for r in connection.execute(query)}
