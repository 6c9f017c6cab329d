"""Cancelling in PostgreSQL: one release, one outbox row, exact stats; abandoned slices settle."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from core import jobs
from core.cancel import cancel_job, settle_abandoned
from core.crypto import SecretBox
from core.database import Database
from core.errors import Conflict, NotFound
from core.finish import fail_job
from core.providers.base import CreatedAccount
from core.settings import Settings
from core.stats import get_stats
from core.users import create_user
from tests.support.outbox import apply_pending
from tests.support.state import assert_invariants
from worker import slices
from worker.fanout import ItemOutcome
from worker.slices import SliceClaim

PRICE = 3


def ledger(db: Database, job_id: uuid.UUID) -> list[tuple[str, int]]:
    query = text("SELECT kind, amount FROM credit_ledger WHERE job_id = :j ORDER BY id")
    with db.engine.connect() as connection:
        return [(r.kind, int(r.amount)) for r in connection.execute(query, {"j": job_id})]


def outbox_payloads(db: Database, job_id: uuid.UUID) -> list[dict[str, object]]:
    query = text("SELECT payload FROM outbox WHERE key = :k")
    with db.engine.connect() as connection:
        return [dict(r.payload) for r in connection.execute(query, {"k": str(job_id)})]


def record_first(db: Database, settings: Settings, claim: SliceClaim, attempted: int) -> None:
    """Record a stopped slice: its first items created, the rest never attempted."""
    made = [
        ItemOutcome(i, account=CreatedAccount(f"ext-{i}", f"user-{i}", f"secret-{i}"))
        for i in claim.indices[:attempted]
    ]
    slices.record(db.sessions, claim, made, SecretBox(settings.fernet_key))


def test_a_cancelled_job_releases_once_writes_one_row_and_counts_once(
    db: Database, settings: Settings
) -> None:
    config = settings.with_changes(price=PRICE)
    user = create_user(db.sessions, "owner", credits=1000).user_id
    job = jobs.submit(db.sessions, config, jobs.JobRequest(user, 120, "sandbox")).job  # 3 slices
    claim = slices.claim(db.sessions, job.id, 1, 60)
    assert claim is not None
    stopping = cancel_job(db.sessions, user, job.id)
    assert (stopping.status, stopping.cancelled) == ("running", 70)  # slices 0 and 2 settled
    assert cancel_job(db.sessions, user, job.id) == stopping  # twice: the same, nothing moves
    assert slices.claim(db.sessions, job.id, 1, 0) is None  # never taken again
    record_first(db, config, claim, attempted=7)
    slices.record(db.sessions, claim, [], SecretBox(config.fernet_key))  # redelivered: nothing
    ended = cancel_job(db.sessions, user, job.id)
    assert (ended.status, ended.successful, ended.failures, ended.cancelled) == (
        "cancelled",
        7,
        0,
        113,
    )
    assert ledger(db, job.id) == [("hold", -120 * PRICE), ("release", 113 * PRICE)]
    payloads = outbox_payloads(db, job.id)
    assert [(p["requested"], p["successful"], p["failures"]) for p in payloads] == [(120, 7, 0)]
    apply_pending(db.sessions)
    counters = get_stats(db.sessions, user).counters
    assert (counters["requested"], counters["successful"], counters["failures"]) == (120, 7, 0)
    assert counters["business_centers"] == 7
    assert_invariants(db)


def test_finished_jobs_refuse_and_other_users_see_nothing(db: Database, settings: Settings) -> None:
    owner = create_user(db.sessions, "owner", credits=100).user_id
    stranger = create_user(db.sessions, "stranger", credits=100).user_id
    job = jobs.submit(db.sessions, settings, jobs.JobRequest(owner, 5, "sandbox")).job
    with pytest.raises(NotFound):
        cancel_job(db.sessions, stranger, job.id)
    with pytest.raises(NotFound):
        cancel_job(db.sessions, owner, uuid.uuid4())
    fail_job(db.sessions, job.id, "the provider is not configured")
    with pytest.raises(Conflict, match="already failed"):
        cancel_job(db.sessions, owner, job.id)
    assert ledger(db, job.id) == [("hold", -5), ("release", 5)]


def test_the_sweep_settles_a_cancelled_job_whose_worker_died(
    db: Database, settings: Settings
) -> None:
    user = create_user(db.sessions, "owner", credits=100).user_id
    job = jobs.submit(db.sessions, settings, jobs.JobRequest(user, 60, "sandbox")).job
    assert slices.claim(db.sessions, job.id, 0, 60) is not None  # its worker will die
    assert cancel_job(db.sessions, user, job.id).status == "running"
    assert settle_abandoned(db.sessions) == 0  # the lease still runs
    with db.engine.begin() as connection:  # the lease runs out
        connection.execute(
            text("UPDATE job_slices SET lease_expires_at = now() - interval '1 second'")
        )
    assert settle_abandoned(db.sessions) == 1
    ended = jobs.read_job(db.engine, user, job.id)
    assert (ended.status, ended.cancelled) == ("cancelled", 60)
    assert settle_abandoned(db.sessions) == 0
    assert_invariants(db)
