"""Cancelling in PostgreSQL: one release, one outbox row, exact stats; abandoned slices settle."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import text

from core import jobs
from core.cancel import cancel_job, settle_abandoned, settle_cancelled
from core.crypto import SecretBox
from core.database import Database
from core.errors import Conflict, NotFound
from core.finish import fail_job
from core.providers.base import CreatedAccount
from core.settings import Settings
from core.stats import get_stats
from core.users import create_user
from harness.outbox import apply_pending
from tests.support.state import assert_invariants
from web.contract.answers import CANCEL_TOO_LATE, job_body
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


def test_a_cancel_answers_while_a_worker_holds_a_slice(db: Database, settings: Settings) -> None:
    """A slice being recorded (its row locked) never holds the cancel's answer back."""
    user = create_user(db.sessions, "owner", credits=1000).user_id
    job = jobs.submit(db.sessions, settings, jobs.JobRequest(user, 120, "sandbox")).job  # 3 slices
    claim = slices.claim(db.sessions, job.id, 1, 60)
    assert claim is not None
    answered: list[jobs.JobView] = []
    with db.engine.connect() as recording, recording.begin():
        lock = "SELECT 1 FROM job_slices WHERE job_id = :j AND slice_index = 1 FOR UPDATE"
        recording.execute(text(lock), {"j": job.id})
        canceller = threading.Thread(
            target=lambda: answered.append(cancel_job(db.sessions, user, job.id))
        )
        canceller.start()
        canceller.join(timeout=30)
        still_waiting = canceller.is_alive()
    canceller.join()
    assert not still_waiting, "the cancel waited for a slice a worker holds"
    assert (answered[0].status, answered[0].cancelled) == ("running", 70)  # slices 0 and 2
    record_first(db, settings, claim, attempted=7)
    ended = jobs.read_job(db.engine, user, job.id)
    assert (ended.status, ended.successful, ended.cancelled) == ("cancelled", 7, 113)
    assert_invariants(db)


def test_a_job_that_attempted_everything_before_its_cancel_ends_completed(
    db: Database, settings: Settings
) -> None:
    """Every slot was attempted before the cancel could stop one: `completed`, not cancelled."""
    user = create_user(db.sessions, "owner", credits=1000).user_id
    job = jobs.submit(db.sessions, settings, jobs.JobRequest(user, 80, "sandbox")).job  # 2 slices
    claims = [slices.claim(db.sessions, job.id, i, 60) for i in range(2)]
    assert cancel_job(db.sessions, user, job.id).status == "running"
    for claim in claims:
        assert claim is not None
        record_first(db, settings, claim, attempted=len(claim.indices))
    ended = cancel_job(db.sessions, user, job.id)  # asked again: answered, not refused
    assert (ended.status, ended.successful, ended.cancelled) == ("completed", 80, 0)
    assert ended.cancel_requested_at is not None
    assert job_body(ended).note == CANCEL_TOO_LATE  # the answer says why it is not cancelled
    assert ledger(db, job.id) == [("hold", -80), ("release", 0)]
    assert_invariants(db)


def test_a_slice_a_turn_held_during_the_cancel_is_settled_after_the_answer(
    db: Database, settings: Settings
) -> None:
    """The cancel skips a pending slice a turn holds; settling after the answer ends the job."""
    user = create_user(db.sessions, "owner", credits=1000).user_id
    job = jobs.submit(db.sessions, settings, jobs.JobRequest(user, 80, "sandbox")).job  # 2 slices
    with db.engine.connect() as turn, turn.begin():
        lock = "SELECT 1 FROM job_slices WHERE job_id = :j AND slice_index = 0 FOR UPDATE"
        turn.execute(text(lock), {"j": job.id})
        answered = cancel_job(db.sessions, user, job.id)
    assert (answered.status, answered.cancelled) == ("queued", 30)  # slice 0 was held
    settle_cancelled(db.sessions, job.id)
    ended = jobs.read_job(db.engine, user, job.id)
    assert (ended.status, ended.cancelled) == ("cancelled", 80)
    assert ledger(db, job.id) == [("hold", -80), ("release", 80)]
    assert_invariants(db)
