"""Fair turns between users, and each user's limit on provider calls in flight.

The worker runs as the Procfile runs it (`dramatiq worker.main:setup`, several processes),
jobs are submitted over HTTP to uvicorn, and what the test asserts is the order in which
things happened as the database recorded it, never how long they took.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from core.broker import make_broker
from core.database import Database
from core.settings import Settings
from core.turn_messages import send_turns
from core.users import NewUser, create_user
from harness.stack import WORKER_READY, Stack
from harness.waiting import wait_for
from tests.faults.checks import assert_exact, submit
from tests.support.counting_provider import counting_provider
from tests.support.state import unfinished_jobs

PROCESSES, THREADS = 2, 2
CLIENTS = 8  # submitting at once
BIG, SMALL = 8000, 10  # TALLY_SLICE_SIZE is 50: 160 slices, and one
SANDBOX = {"TALLY_SANDBOX_LATENCY_MS": "20"}


def job_status(db: Database, job_id: uuid.UUID) -> str:
    with db.engine.connect() as connection:
        query = text("SELECT status FROM jobs WHERE id = :id")
        return str(connection.execute(query, {"id": job_id}).scalar_one())


def slices_done(db: Database, job_id: uuid.UUID) -> int:
    with db.engine.connect() as connection:
        query = text("SELECT slices_done FROM jobs WHERE id = :id")
        return int(connection.execute(query, {"id": job_id}).scalar_one())


def slices_pending(db: Database, job_id: uuid.UUID) -> int:
    query = text("SELECT count(*) FROM job_slices WHERE job_id = :id AND status = 'pending'")
    with db.engine.connect() as connection:
        return int(connection.execute(query, {"id": job_id}).scalar_one())


def slices_finished_after(db: Database, job_id: uuid.UUID, other: uuid.UUID) -> int:
    """How many of a job's slices finished after `other` job finished."""
    query = text(
        "SELECT count(*) FROM job_slices s, jobs o WHERE s.job_id = :id AND o.id = :other "
        "AND s.finished_at > o.finished_at"
    )
    with db.engine.connect() as connection:
        return int(connection.execute(query, {"id": job_id, "other": other}).scalar_one())


def start_worker(stack: Stack, env: Mapping[str, str], threads: int = THREADS) -> None:
    worker = stack.worker(threads=threads, processes=PROCESSES, env=env)
    worker.wait_for_log(WORKER_READY, count=PROCESSES)


@pytest.mark.parametrize("fair", [True, False], ids=["fair-turns", "one-queue"])
def test_a_small_job_submitted_after_a_big_one_finishes_while_the_big_one_runs(
    stack: Stack, db: Database, user: NewUser, fair: bool
) -> None:
    small_user = create_user(db.sessions, "small-user", credits=1000)
    url = stack.web()
    start_worker(stack, {"TALLY_FAIR_TURNS": str(fair).lower(), **SANDBOX})
    [big] = submit(url, user.token, [BIG])
    wait_for(lambda: slices_done(db, big) >= PROCESSES * THREADS, timeout=30, interval=0.02)
    [small] = submit(url, small_user.token, [SMALL])
    wait_for(lambda: job_status(db, small) == "completed", timeout=60, interval=0.02)
    big_when_small_completed = job_status(db, big), slices_pending(db, big)
    wait_for(lambda: unfinished_jobs(db) == 0, timeout=60)
    # At most one slice per worker thread runs at once: more of the big job's slices than
    # that finishing after the small job means the small one went ahead of waiting ones.
    overtaken = slices_finished_after(db, big, small)
    if fair:
        assert big_when_small_completed[0] == "running" and big_when_small_completed[1] > 0
        assert overtaken > PROCESSES * THREADS
    else:
        assert overtaken <= PROCESSES * THREADS  # one queue: it waited for every slice
    assert_exact(db, all_successful=True)


def test_one_users_jobs_submitted_from_many_clients_at_once_all_run_with_no_sweep(
    stack: Stack, db: Database, user: NewUser
) -> None:
    """A submit holds its user's queue row a moment, and a turn that meets the row held ends:
    each submit's own turn carries the work on, for no daemon runs here to send one."""
    url = stack.web(TALLY_USER_SUBMITS_PER_MINUTE="0", TALLY_USER_MAX_UNFINISHED_JOBS="0")
    start_worker(stack, SANDBOX, threads=4)
    with ThreadPoolExecutor(CLIENTS) as clients:
        batches = clients.map(lambda _: submit(url, user.token, [SMALL] * 20), range(CLIENTS))
        submitted = [job for batch in batches for job in batch]
    assert len(submitted) == CLIENTS * 20
    wait_for(lambda: unfinished_jobs(db) == 0, timeout=60, interval=0.05)
    assert_exact(db, all_successful=True)


# Per user: a slice of 50 items takes 50 of it, so a second slice of a user only fits when
# it is a job's short last one (510 = 10 slices of 50 and one of 10).
LIMIT = 75
PROVIDER_PAUSE = 0.02


def send_every_slice_again(
    db: Database, settings: Settings, redis_url: str, job_ids: list[uuid.UUID]
) -> int:
    """Send one more turn per slice, as redeliveries or the sweep would."""
    query = text("SELECT id, slices_total FROM jobs WHERE id = ANY(:ids)")
    with db.engine.connect() as connection:
        totals = {row.id: row.slices_total for row in connection.execute(query, {"ids": job_ids})}
    broker = make_broker(settings.with_changes(redis_url=redis_url))
    try:
        return send_turns(broker, sum(totals.values()))
    finally:
        broker.close()


def test_no_user_ever_has_more_calls_in_flight_than_its_limit(
    stack: Stack, db: Database, user: NewUser, settings: Settings
) -> None:
    others = [create_user(db.sessions, f"user-{n}", credits=10_000) for n in range(2)]
    with counting_provider(PROVIDER_PAUSE) as (provider_url, calls):
        url = stack.web(TALLY_PROVIDER="http", TALLY_PROVIDER_URL=provider_url)
        # No reconcile daemon, so no sweep: turns a user's limit left unused are made up
        # only by the workers' own owed turns.
        start_worker(
            stack,
            {
                "TALLY_PROVIDER": "http",
                "TALLY_PROVIDER_URL": provider_url,
                "TALLY_PROVIDER_CONCURRENCY": "100",  # per process: 200 at once without a limit
                "TALLY_USER_CONCURRENCY": str(LIMIT),
                "TALLY_STALE_ENQUEUE_SECONDS": "3600",
            },
            threads=4,  # eight slices at once: without its limit, one user would take them
        )
        jobs_of = {
            user.user_id: submit(url, user.token, [510, 500]),
            others[0].user_id: submit(url, others[0].token, [1000]),
            others[1].user_id: submit(url, others[1].token, [300]),
        }
        # Every message a second time, while the jobs run: the surplus turns change nothing.
        every_job = [job for jobs in jobs_of.values() for job in jobs]
        assert send_every_slice_again(db, settings, stack.env["REDIS_URL"], every_job) == 47
        wait_for(lambda: unfinished_jobs(db) == 0, timeout=60)
    peaks = {owner: calls.peak(jobs) for owner, jobs in jobs_of.items()}
    print(f"\n[user concurrency] limit {LIMIT}, peaks in flight per user {sorted(peaks.values())}")
    assert all(0 < peak <= LIMIT for peak in peaks.values()), peaks
    assert max(calls.keys.values()) == 1  # no call made twice
    assert_exact(db, all_successful=True)
