"""Redelivery is harmless: every figure equals what a single delivery gives."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import dramatiq
import pytest

from core import jobs
from core.crypto import SecretBox
from core.database import Database
from core.errors import PermanentProviderError
from core.jobs import JobRequest
from core.providers.base import item_key
from core.providers.sandbox import SandboxProvider
from core.settings import SandboxOptions, Settings
from core.turn_messages import TURN_QUEUE, send_turns
from core.users import create_user
from harness.outbox import apply_pending
from reconcile.sweep import take_back_expired
from tests.integration.conftest import WorkerRunner
from tests.support.inline import process_job, slice_context
from tests.support.state import assert_invariants, totals, wait_all_terminal
from worker import slices
from worker.fanout import ItemOutcome, create_accounts
from worker.processing import run_turn

SANDBOX = SandboxOptions(failure_rate=0.2)
PRICE = 2
GRANT = 10_000


@dataclass(frozen=True)
class Submitted:
    """Jobs submitted by a few users, as the test knows them."""

    user_ids: list[uuid.UUID]
    jobs: list[jobs.JobView]


@pytest.fixture
def job_settings(settings: Settings) -> Settings:
    return settings.with_changes(sandbox=SANDBOX, price=PRICE)


def submit_jobs(db: Database, settings: Settings, counts: list[int]) -> Submitted:
    users = [create_user(db.sessions, f"user{i}", credits=GRANT).user_id for i in range(2)]
    views = [
        jobs.submit(db.sessions, settings, JobRequest(users[i % 2], count, "sandbox")).job
        for i, count in enumerate(counts)
    ]
    return Submitted(users, views)


def successes(job_id: uuid.UUID, count: int) -> int:
    """How many slots the deterministic sandbox creates for this job."""
    provider = SandboxProvider(SANDBOX)

    async def created(index: int) -> int:
        try:
            await provider.create_account(item_key(job_id, index))
        except PermanentProviderError:
            return 0
        return 1

    async def run() -> int:
        return sum(await asyncio.gather(*(created(i) for i in range(count))))

    return asyncio.run(run())


def single_delivery_totals(submitted: Submitted) -> dict[str, int]:
    """The fingerprint one delivery of every message produces, after the outbox applied."""
    created = sum(successes(j.id, j.requested) for j in submitted.jobs)
    requested = sum(j.requested for j in submitted.jobs)
    return {
        "vault": created,
        "successful": created,
        "failures": requested - created,
        "ledger_rows": len(submitted.user_ids) + 2 * len(submitted.jobs),
        "ledger_sum": GRANT * len(submitted.user_ids) - PRICE * created,
        "outbox_rows": len(submitted.jobs),
        "stats_successful": created,
        "stats_failures": requested - created,
        "stats_bc": created,
    }


def settle(db: Database) -> dict[str, int]:
    apply_pending(db.sessions)
    return totals(db)


def send_every_slice(broker: dramatiq.Broker, submitted: Submitted, times: int) -> None:
    """Send one turn per slice, `times` over: more turns than the work needs."""
    send_turns(broker, times * sum(job.slices_total for job in submitted.jobs))


def drain(broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
    """Wait until every turn message was processed and acknowledged."""
    broker.join(TURN_QUEUE, timeout=60_000)  # type: ignore[attr-defined]
    worker.join()


def test_every_message_sent_three_times_counts_once(
    db: Database,
    job_settings: Settings,
    run_worker: WorkerRunner,
    broker: dramatiq.Broker,
) -> None:
    submitted = submit_jobs(db, job_settings, [1, 7, 120, 333, 50])
    send_every_slice(broker, submitted, 3)
    with run_worker(threads=6, sandbox=SANDBOX) as worker:
        wait_all_terminal(db, timeout=60)
        drain(broker, worker)
        after_first = settle(db)
        # Late copies, after every job completed, change nothing either.
        send_every_slice(broker, submitted, 2)
        drain(broker, worker)
    expected = single_delivery_totals(submitted)
    assert expected["successful"] > 0 and expected["failures"] > 0
    assert after_first == expected
    assert settle(db) == after_first
    assert_invariants(db)
    for job in submitted.jobs:
        view = jobs.read_job(db.reader, job.user_id, job.id)
        assert view.status == "completed"
        assert view.successful == successes(job.id, job.requested)


def test_messages_repeated_while_the_job_runs_count_once(
    db: Database,
    job_settings: Settings,
    run_worker: WorkerRunner,
    broker: dramatiq.Broker,
) -> None:
    submitted = submit_jobs(db, job_settings, [400, 60])
    with run_worker(threads=4, sandbox=SandboxOptions(failure_rate=0.2, latency_ms=2)) as worker:
        send_every_slice(broker, submitted, 1)
        send_every_slice(broker, submitted, 1)
        wait_all_terminal(db, timeout=60)
        send_every_slice(broker, submitted, 1)
        drain(broker, worker)
    assert settle(db) == single_delivery_totals(submitted)
    assert_invariants(db)


def test_every_message_twice_records_each_slice_once(db: Database, job_settings: Settings) -> None:
    # A message is a turn for the user at the front of the turn queue: twice as many
    # turns as slices record each slice exactly once, and the surplus turns run nothing.
    submitted = submit_jobs(db, job_settings, [120, 1])
    slices_total = sum(job.slices_total for job in submitted.jobs)
    with slice_context(db, job_settings) as context:
        results = [run_turn(context) for _ in range(2 * slices_total)]
        again = [run_turn(context).recorded for _ in submitted.jobs]
    assert 0 < sum(result.recorded for result in results) <= slices_total
    assert sum(len(result.finished_jobs) for result in results) == len(submitted.jobs)
    assert again == [False, False]
    assert settle(db) == single_delivery_totals(submitted)
    assert_invariants(db)


def test_turns_from_many_threads_at_once_record_once(db: Database, job_settings: Settings) -> None:
    submitted = submit_jobs(db, job_settings, [250])
    job = submitted.jobs[0]
    with slice_context(db, job_settings) as context:
        copies = 3
        barrier = threading.Barrier(copies * job.slices_total)
        recorded: list[bool] = []
        lock = threading.Lock()

        def deliver(index: int) -> None:
            barrier.wait()
            result = run_turn(context)
            with lock:
                recorded.append(result.recorded)

        threads = [
            threading.Thread(target=deliver, args=(index,))
            for index in range(job.slices_total)
            for _ in range(copies)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert 0 < sum(recorded) <= job.slices_total and len(recorded) == copies * job.slices_total
    process_job(db, job_settings, job.id)  # the turns the claiming ones sent next
    assert settle(db) == single_delivery_totals(submitted)
    assert_invariants(db)


@pytest.fixture
def one_slice_job(db: Database, job_settings: Settings) -> Iterator[Submitted]:
    yield submit_jobs(db, job_settings, [40])


def outcomes_for(claim: slices.SliceClaim) -> list[ItemOutcome]:
    provider = SandboxProvider(SANDBOX)
    return asyncio.run(
        create_accounts(provider, claim.job_id, list(claim.indices), concurrency=8, attempts=1)
    )


def test_record_twice_with_the_same_claim_counts_once(
    db: Database, job_settings: Settings, one_slice_job: Submitted
) -> None:
    job = one_slice_job.jobs[0]
    box = SecretBox(job_settings.fernet_key)
    claim = slices.claim(db.sessions, job.id, 0, lease_seconds=30)
    assert claim is not None and claim.attempt == 1
    outcomes = outcomes_for(claim)
    first = slices.record(db.sessions, claim, outcomes, box)
    before = totals(db)
    second = slices.record(db.sessions, claim, outcomes, box)
    assert first.recorded and first.finished is not None
    assert not second.recorded and second.finished is None
    assert totals(db) == before
    assert settle(db) == single_delivery_totals(one_slice_job)
    assert_invariants(db)


def test_a_stale_attempt_and_its_successor_record_once(
    db: Database, job_settings: Settings, one_slice_job: Submitted
) -> None:
    job = one_slice_job.jobs[0]
    box = SecretBox(job_settings.fernet_key)
    stale = slices.claim(db.sessions, job.id, 0, lease_seconds=0)
    assert stale is not None
    fresh = slices.claim(db.sessions, job.id, 0, lease_seconds=30)
    assert fresh is not None and fresh.attempt == stale.attempt + 1
    assert slices.claim(db.sessions, job.id, 0, lease_seconds=30) is None
    assert slices.extend_leases(db.sessions, [stale, fresh], 30) == {(job.id, 0)}
    # The successor records, then the stale attempt wakes up and tries with other outcomes.
    assert slices.record(db.sessions, fresh, outcomes_for(fresh), box).recorded
    failed_everything = [ItemOutcome(i, error="late") for i in stale.indices]
    assert not slices.record(db.sessions, stale, failed_everything, box).recorded
    assert settle(db) == single_delivery_totals(one_slice_job)
    assert_invariants(db)


def test_a_slice_that_gave_up_still_finishes_the_job_once(
    db: Database, job_settings: Settings, one_slice_job: Submitted
) -> None:
    job = one_slice_job.jobs[0]
    stale = slices.claim(db.sessions, job.id, 0, lease_seconds=0)
    assert stale is not None
    assert take_back_expired(db.sessions).slices == 1  # the sweep, once its lease ran out
    with slice_context(db, job_settings.with_changes(slice_max_attempts=1)) as context:
        given_up = run_turn(context)
    assert given_up.recorded and given_up.finished is not None
    assert (given_up.successful, given_up.failures) == (0, job.requested)
    box = SecretBox(job_settings.fernet_key)
    assert not slices.record(db.sessions, stale, outcomes_for(stale), box).recorded
    apply_pending(db.sessions)
    figures = totals(db)
    assert (figures["vault"], figures["failures"], figures["stats_failures"]) == (
        0,
        job.requested,
        job.requested,
    )
    assert figures["ledger_sum"] == GRANT * len(one_slice_job.user_ids)
    assert_invariants(db)


def test_a_job_that_cannot_run_fails_once_however_often_its_slices_arrive(
    db: Database, job_settings: Settings
) -> None:
    user = create_user(db.sessions, "alice", credits=GRANT).user_id
    offering_http = job_settings.with_changes(providers=("sandbox", "http"))
    job = jobs.submit(db.sessions, offering_http, JobRequest(user, 130, "http")).job
    with slice_context(db, job_settings.with_changes(provider_url="")) as context:
        barrier = threading.Barrier(2 * job.slices_total)

        def deliver(index: int) -> None:
            barrier.wait()
            run_turn(context)

        threads = [
            threading.Thread(target=deliver, args=(index,))
            for index in range(job.slices_total)
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for _ in range(job.slices_total):
            assert not run_turn(context).recorded
    view = jobs.read_job(db.reader, user, job.id)
    assert (view.status, view.successful, view.failures) == ("failed", 0, 130)
    assert view.error is not None and "TALLY_PROVIDER_URL" in view.error
    figures = settle(db)
    assert (figures["vault"], figures["ledger_rows"], figures["outbox_rows"]) == (0, 3, 1)
    assert figures["ledger_sum"] == GRANT
    assert (figures["stats_failures"], figures["stats_successful"]) == (130, 0)
    assert_invariants(db)
