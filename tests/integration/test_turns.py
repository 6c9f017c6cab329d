"""Turns on the real database: which slice a turn takes, limits, and the turns owed."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import text

from core import jobs, turn_queue
from core.crypto import SecretBox
from core.database import Database
from core.jobs import JobRequest
from core.settings import Settings
from core.users import create_user
from reconcile.sweep import take_back_expired
from tests.support.state import assert_invariants
from worker import slices
from worker.deferral import defer
from worker.fanout import ItemOutcome
from worker.turns import Turn, TurnPolicy, take_turn

SLICE = 10


@pytest.fixture
def small_slices(settings: Settings) -> Settings:
    return settings.with_changes(slice_size=SLICE)


def submit(db: Database, settings: Settings, name: str, count: int) -> jobs.JobView:
    owner = create_user(db.sessions, name, credits=10_000).user_id
    return jobs.submit(db.sessions, settings, JobRequest(owner, count, "sandbox")).job


def turn(db: Database, policy: TurnPolicy) -> list[tuple[uuid.UUID, int]]:
    """The (job, slice) keys one turn claimed."""
    return [(c.job_id, c.slice_index) for c in take_turn(db.sessions, policy, lease=30).claims]


def finish(db: Database, settings: Settings, claim: slices.SliceClaim) -> slices.SliceResult:
    failed = [ItemOutcome(i, error="refused") for i in claim.indices]
    return slices.record(db.sessions, claim, failed, SecretBox(settings.fernet_key))


def owed(db: Database) -> int:
    with db.engine.connect() as connection:
        query = text("SELECT coalesce(sum(owed), 0) FROM user_turns_owed")
        return int(connection.execute(query).scalar_one())


def policy_of(fair: bool = True, user_limit: int = 1000, budget: int = SLICE) -> TurnPolicy:
    return TurnPolicy(fair=fair, user_limit=user_limit, slice_cap=100, budget=budget)


def test_users_take_turns_round_robin_and_a_newcomer_is_served_next(
    db: Database, small_slices: Settings
) -> None:
    first = submit(db, small_slices, "first", 3 * SLICE)
    second = submit(db, small_slices, "second", 3 * SLICE)
    policy = policy_of()
    # Each arrival goes to the front; each user served goes to the back.
    assert turn(db, policy) == [(second.id, 0)]
    assert turn(db, policy) == [(first.id, 0)]
    assert turn(db, policy) == [(second.id, 1)]
    newcomer = submit(db, small_slices, "newcomer", SLICE)
    assert turn(db, policy) == [(newcomer.id, 0)]
    assert turn(db, policy) == [(first.id, 1)]
    assert turn(db, policy) == [(second.id, 2)]
    assert turn(db, policy) == [(first.id, 2)]
    assert turn(db, policy) == []
    assert scalar(db, "SELECT count(*) FROM turn_queue") == 0


def test_a_turn_takes_a_users_small_jobs_together_up_to_its_budget(
    db: Database, small_slices: Settings
) -> None:
    owner = create_user(db.sessions, "many", credits=10_000).user_id
    small = [
        jobs.submit(db.sessions, small_slices, JobRequest(owner, 4, "sandbox")).job
        for _ in range(5)
    ]
    policy = policy_of(budget=10)  # two jobs of 4 fit, a third would not
    assert turn(db, policy) == sorted([(small[0].id, 0), (small[1].id, 0)], key=lambda k: str(k[0]))
    assert turn(db, policy) == sorted([(small[2].id, 0), (small[3].id, 0)], key=lambda k: str(k[0]))
    assert turn(db, policy) == [(small[4].id, 0)]
    assert turn(db, policy) == []


def test_with_fair_turns_off_a_turn_takes_the_oldest_job_first(
    db: Database, small_slices: Settings
) -> None:
    big = submit(db, small_slices, "big", 3 * SLICE)
    small = submit(db, small_slices, "small", SLICE)
    policy = policy_of(fair=False)
    taken = [turn(db, policy) for _ in range(4)]
    assert taken == [[(big.id, 0)], [(big.id, 1)], [(big.id, 2)], [(small.id, 0)]]


def test_a_user_at_its_limit_is_passed_over_and_its_turn_owed_until_a_slice_finishes(
    db: Database, small_slices: Settings
) -> None:
    submit(db, small_slices, "limited", 2 * SLICE)
    policy = TurnPolicy(fair=True, user_limit=SLICE, slice_cap=SLICE, budget=2 * SLICE)
    [first] = take_turn(db.sessions, policy, lease=30).claims  # one slice: the limit's room
    assert first.lanes == SLICE
    assert take_turn(db.sessions, policy, lease=30).claims == []
    assert take_turn(db.sessions, policy, lease=30).claims == []
    assert owed(db) == 2
    result = finish(db, small_slices, first)
    assert result.owed_turn and owed(db) == 1
    [second] = take_turn(db.sessions, policy, lease=30).claims
    assert second.slice_index == 1
    assert finish(db, small_slices, second).finished is not None
    assert owed(db) == 0
    assert_invariants(db)


def test_a_slice_whose_lease_ran_out_is_taken_back_by_the_sweep_and_run_again(
    db: Database, small_slices: Settings
) -> None:
    job = submit(db, small_slices, "alone", SLICE)
    policy = policy_of()
    [stale] = take_turn(db.sessions, policy, lease=0).claims
    assert take_turn(db.sessions, policy, lease=30).claims == []  # the user left the queue
    taken_back = take_back_expired(db.sessions)
    assert (taken_back.slices, taken_back.turns) == (1, 1)
    [fresh] = take_turn(db.sessions, policy, lease=30).claims
    assert (fresh.job_id, fresh.slice_index, fresh.attempt) == (job.id, 0, stale.attempt + 1)
    assert finish(db, small_slices, fresh).recorded
    assert not finish(db, small_slices, stale).recorded
    assert_invariants(db)


def test_a_slice_waiting_for_its_provider_is_not_taken_before_its_retry_time(
    db: Database, small_slices: Settings
) -> None:
    job = submit(db, small_slices, "waiting", 2 * SLICE)
    policy = policy_of()
    [first] = take_turn(db.sessions, policy, lease=30).claims
    assert first.slice_index == 0
    assert defer(db.sessions, first, time.time() + 3600, "provider_unavailable")
    # Slice 0 waits an hour for its provider: the next turn takes slice 1, then the user
    # is parked until then.
    assert turn(db, policy) == [(job.id, 1)]
    assert turn(db, policy) == []
    assert scalar(db, "SELECT count(*) FROM turn_queue WHERE wake_at > now()") == 1
    assert defer_until_now(db, job.id, 0) == 1
    assert turn(db, policy) == [(job.id, 0)]


def test_no_turn_takes_a_slice_of_a_job_whose_cancel_was_asked(
    db: Database, small_slices: Settings
) -> None:
    job = submit(db, small_slices, "cancelling", 2 * SLICE)
    policy = policy_of()
    assert turn(db, policy) == [(job.id, 0)]
    with db.sessions() as session, session.begin():
        session.execute(
            text("UPDATE jobs SET cancel_requested_at = now() WHERE id = :id"), {"id": job.id}
        )
    assert turn(db, policy) == []


def scalar(db: Database, query: str) -> int:
    with db.engine.connect() as connection:
        return int(connection.execute(text(query)).scalar_one())


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
        session.execute(text("UPDATE turn_queue SET wake_at = now()"))  # the user wakes
        return int(moved.rowcount)  # type: ignore[attr-defined]


def test_a_turn_that_finds_every_ready_user_held_ends_and_the_holder_sends_the_next(
    db: Database, small_slices: Settings
) -> None:
    job = submit(db, small_slices, "held", 2 * SLICE)
    policy = policy_of()
    with db.sessions() as holder, holder.begin():  # a submit of this user, arrived, not committed
        turn_queue.arrive(holder, job.user_id)
        held = take_turn(db.sessions, policy, lease=30)
    assert held == Turn([])  # it ends: no turn circulates waiting for the row
    # So every submit sends a turn once committed, its user already queued or not.
    later = jobs.submit(db.sessions, small_slices, JobRequest(job.user_id, SLICE, "sandbox"))
    assert later.turns == 1
    assert turn(db, policy) == [(job.id, 0)]
    assert turn(db, policy) == [(job.id, 1)]
    assert turn(db, policy) == [(later.job.id, 0)]
    assert take_turn(db.sessions, policy, lease=30) == Turn([])
