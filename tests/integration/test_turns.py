"""Turns on the real database: which slice a turn takes, limits, and the turns owed."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import text

from core import jobs
from core.crypto import SecretBox
from core.database import Database
from core.jobs import JobRequest
from core.settings import Settings
from core.users import create_user
from tests.support.state import assert_invariants
from worker import slices
from worker.deferral import defer
from worker.fanout import ItemOutcome
from worker.turns import TurnPolicy, take_turn

SLICE = 10


@pytest.fixture
def small_slices(settings: Settings) -> Settings:
    return settings.with_changes(slice_size=SLICE)


def submit(db: Database, settings: Settings, name: str, count: int) -> jobs.JobView:
    owner = create_user(db.sessions, name, credits=10_000).user_id
    return jobs.submit(db.sessions, settings, JobRequest(owner, count, "sandbox")).job


def turn(db: Database, policy: TurnPolicy) -> tuple[uuid.UUID, int] | None:
    claim = take_turn(db.sessions, policy, lease_seconds=30)
    return None if claim is None else (claim.job_id, claim.slice_index)


def finish(db: Database, settings: Settings, claim: slices.SliceClaim) -> slices.SliceResult:
    failed = [ItemOutcome(i, error="refused") for i in claim.indices]
    return slices.record(db.sessions, claim, failed, SecretBox(settings.fernet_key))


def owed(db: Database) -> int:
    with db.engine.connect() as connection:
        query = text("SELECT coalesce(sum(owed), 0) FROM user_turns_owed")
        return int(connection.execute(query).scalar_one())


def test_a_turn_takes_the_next_slice_of_the_user_with_fewest_running(
    db: Database, small_slices: Settings
) -> None:
    big = submit(db, small_slices, "big", 3 * SLICE)
    small = submit(db, small_slices, "small", SLICE)
    policy = TurnPolicy(fair=True, user_limit=1000, slice_cap=100)
    taken = [turn(db, policy) for _ in range(5)]
    assert taken == [(big.id, 0), (small.id, 0), (big.id, 1), (big.id, 2), None]


def test_with_fair_turns_off_a_turn_takes_the_oldest_job_first(
    db: Database, small_slices: Settings
) -> None:
    big = submit(db, small_slices, "big", 3 * SLICE)
    small = submit(db, small_slices, "small", SLICE)
    policy = TurnPolicy(fair=False, user_limit=1000, slice_cap=100)
    taken = [turn(db, policy) for _ in range(4)]
    assert taken == [(big.id, 0), (big.id, 1), (big.id, 2), (small.id, 0)]


def test_a_user_at_its_limit_is_passed_over_and_its_turn_owed_until_a_slice_finishes(
    db: Database, small_slices: Settings
) -> None:
    limited = submit(db, small_slices, "limited", 2 * SLICE)
    policy = TurnPolicy(fair=True, user_limit=SLICE, slice_cap=SLICE)  # one slice at a time
    first = take_turn(db.sessions, policy, lease_seconds=30)
    assert first is not None and first.lanes == SLICE
    assert take_turn(db.sessions, policy, lease_seconds=30) is None
    assert take_turn(db.sessions, policy, lease_seconds=30) is None
    assert owed(db) == 2
    result = finish(db, small_slices, first)
    assert result.owed_turn == (limited.id, 0) and owed(db) == 1
    second = take_turn(db.sessions, policy, lease_seconds=30)
    assert second is not None and second.slice_index == 1
    assert finish(db, small_slices, second).finished is not None
    assert owed(db) == 0
    assert_invariants(db)


def test_a_slice_whose_lease_ran_out_is_taken_by_the_next_turn(
    db: Database, small_slices: Settings
) -> None:
    job = submit(db, small_slices, "alone", SLICE)
    policy = TurnPolicy(fair=True, user_limit=SLICE, slice_cap=SLICE)
    stale = take_turn(db.sessions, policy, lease_seconds=0)
    # Its lease is over, so it neither counts against the limit nor keeps the slice.
    fresh = take_turn(db.sessions, policy, lease_seconds=30)
    assert stale is not None and fresh is not None
    assert (fresh.job_id, fresh.slice_index, fresh.attempt) == (job.id, 0, stale.attempt + 1)
    assert finish(db, small_slices, fresh).recorded
    assert not finish(db, small_slices, stale).recorded
    assert_invariants(db)


def test_a_slice_waiting_for_its_provider_is_not_taken_before_its_retry_time(
    db: Database, small_slices: Settings
) -> None:
    job = submit(db, small_slices, "waiting", 2 * SLICE)
    policy = TurnPolicy(fair=True, user_limit=1000, slice_cap=100)
    first = take_turn(db.sessions, policy, lease_seconds=30)
    assert first is not None and first.slice_index == 0
    assert defer(db.sessions, first, time.time() + 3600, "provider_unavailable")
    # Slice 0 waits an hour for its provider: the next turns take slice 1, then nothing.
    assert turn(db, policy) == (job.id, 1)
    assert turn(db, policy) is None
    assert defer_until_now(db, job.id, 0) == 1
    assert turn(db, policy) == (job.id, 0)


def test_no_turn_takes_a_slice_of_a_job_whose_cancel_was_asked(
    db: Database, small_slices: Settings
) -> None:
    job = submit(db, small_slices, "cancelling", 2 * SLICE)
    policy = TurnPolicy(fair=True, user_limit=1000, slice_cap=100)
    assert turn(db, policy) == (job.id, 0)
    with db.sessions() as session, session.begin():
        session.execute(
            text("UPDATE jobs SET cancel_requested_at = now() WHERE id = :id"), {"id": job.id}
        )
    assert turn(db, policy) is None


def defer_until_now(db: Database, job_id: uuid.UUID, slice_index: int) -> int:
    """Bring a waiting slice's retry time to now, as if the provider's wait were over."""
    with db.sessions() as session, session.begin():
        moved = session.execute(
            text(
                "UPDATE job_slices SET enqueued_at = now() "
                "WHERE job_id = :job_id AND slice_index = :slice_index"
            ),
            {"job_id": job_id, "slice_index": slice_index},
        )
        return int(moved.rowcount)  # type: ignore[attr-defined]
