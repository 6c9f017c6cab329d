"""A provider that pushes back: rate limits, outages and late answers cost time, not accounts.

Real `dramatiq` workers create accounts through the `http` provider against the reference
provisioning API (devstack/reference_provider.py, a real uvicorn), and each test compares
what the provider counted with what the vault, the jobs and the ledger hold.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
from sqlalchemy import text

from core.database import Database
from core.users import NewUser
from harness.stack import WORKER_READY, Stack
from harness.waiting import wait_for
from reconcile.report import run_report
from tests.faults.checks import assert_exact, settle, submit
from tests.support.reference import ReferenceServer

# Small figures so that each behaviour shows within seconds.
PUSHBACK_ENV = {
    "TALLY_PROVIDER_TIMEOUT": "0.5",
    "TALLY_PROVIDER_PATIENCE": "30",
    "TALLY_PROVIDER_BACKOFF_MAX": "0.5",
    "TALLY_SLICE_WAIT_SECONDS": "1",
}


def vault_rows(db: Database) -> int:
    """Accounts in every vault."""
    with db.engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM user_accounts")).scalar_one())


def jobs_table(db: Database) -> list[Any]:
    """Every job's outcome columns."""
    query = text(
        "SELECT id, status, requested, successful, failures, orphans, failure_reasons, "
        "waiting FROM jobs ORDER BY created_at"
    )
    with db.engine.connect() as connection:
        return list(connection.execute(query))


def job_answer(url: str, token: str, job_id: uuid.UUID) -> dict[str, Any]:
    """GET /api/job/<id> as its owner."""
    headers = {"Authorization": f"Bearer {token}"}
    answer = httpx.get(f"{url}/api/job/{job_id}", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def deferred_slices(db: Database) -> int:
    """Slices given back to wait for the provider (pending, not to be re-sent before then)."""
    query = text("SELECT count(*) FROM job_slices WHERE status = 'pending' AND enqueued_at > now()")
    with db.engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def released_matches_failures(db: Database) -> bool:
    """Each job's released credits equal its failures times its price."""
    query = text(
        "SELECT bool_and(coalesce(l.amount, 0) = j.failures * j.price) FROM jobs j "
        "LEFT JOIN credit_ledger l ON l.job_id = j.id AND l.kind = 'release'"
    )
    with db.engine.connect() as connection:
        return bool(connection.execute(query).scalar_one())


def test_rate_limit_maintenance_and_late_answers_cost_time_not_accounts(
    stack: Stack, db: Database, user: NewUser
) -> None:
    """The operator's scenario, scaled: 3 jobs, a rate limit, a maintenance window, 1 % late."""
    provider = ReferenceServer(
        stack, "--rate-limit", "100", "--late-fraction", "0.01", "--late-seconds", "3",
        "--outage-retry-after", "1", "--seed", "7",
    )  # fmt: skip
    env = provider.env(
        **{**PUSHBACK_ENV, "TALLY_SLICE_WAIT_SECONDS": "5"}, TALLY_PROVIDER_RATE_LIMIT="90"
    )
    stack.reconcile(env=env)
    url = stack.web(env=env)
    stack.worker(threads=4, processes=2, env=env)
    started = time.monotonic()
    job_ids = submit(url, user.token, [150, 150, 150])
    wait_for(lambda: provider.counts()["accounts"] >= 100, timeout=30)
    provider.outage(2.0)
    waiting = wait_for(lambda: _waiting_for_maintenance(url, user, job_ids), 10, 0.05)
    assert waiting["retry_at"], waiting
    settle(db, started, "rate limit, maintenance, late answers", after="the submit")

    counts = provider.counts()
    shown = {k: v for k, v in counts.items() if k != "accounts_by_key"}
    print(f"\n[pushback] provider counts: {shown}")
    assert_exact(db, all_successful=True)
    assert counts["accounts"] == vault_rows(db) == 450
    assert counts["keys_with_several_accounts"] == 0
    assert all(row.orphans == 0 for row in jobs_table(db))
    assert counts["answers"].get("503", 0) > 0, "the maintenance window was never met"
    assert counts["max_requests_in_one_second"] <= 90 * 1.1
    assert job_answer(url, user.token, job_ids[0])["waiting"] is None


def _waiting_for_maintenance(
    url: str, user: NewUser, job_ids: list[uuid.UUID]
) -> dict[str, Any] | None:
    """The first job whose answer says it waits for an unavailable provider."""
    answers = (job_answer(url, user.token, j) for j in job_ids)
    return next((a for a in answers if a["waiting"] == "provider_unavailable"), None)


def test_an_outage_longer_than_the_patience_fails_the_rest_with_its_reason(
    stack: Stack, db: Database, user: NewUser
) -> None:
    provider = ReferenceServer(stack, "--outage-retry-after", "1")
    env = provider.env(**{**PUSHBACK_ENV, "TALLY_PROVIDER_PATIENCE": "2"})
    stack.reconcile(env=env)
    url = stack.web(env=env)
    stack.worker(threads=2, env=env)
    provider.outage(600)
    started = time.monotonic()
    job_ids = submit(url, user.token, [120, 80])
    settle(db, started, "an outage past the patience", after="the submit")

    assert_exact(db, all_successful=False)
    rows = jobs_table(db)
    assert [(r.status, r.successful, r.failures) for r in rows] == [
        ("completed", 0, 120),
        ("completed", 0, 80),
    ]
    assert [r.failure_reasons for r in rows] == [
        {"provider_unavailable": 120},
        {"provider_unavailable": 80},
    ]
    assert released_matches_failures(db)
    answer = job_answer(url, user.token, job_ids[0])
    assert answer["failures_by_reason"] == {"provider_unavailable": 120}
    assert answer["waiting"] is None and answer["retry_at"] is None
    # Paused, not hammered: a handful of probes per Retry-After, not one per item and second.
    assert provider.counts()["answers"]["503"] < 200


def test_a_provider_that_ignores_keys_leaves_one_account_per_slot_and_counts_orphans(
    stack: Stack, db: Database, user: NewUser
) -> None:
    provider = ReferenceServer(
        stack, "--ignore-keys", "--late-fraction", "0.05", "--late-seconds", "2", "--seed", "3"
    )
    env = provider.env(**PUSHBACK_ENV)
    stack.reconcile(env=env)
    url = stack.web(env=env)
    stack.worker(threads=2, env=env)
    started = time.monotonic()
    submit(url, user.token, [200])
    settle(db, started, "a provider that ignores keys", after="the submit")

    assert_exact(db, all_successful=True)
    counts = provider.counts()
    orphans = sum(row.orphans for row in jobs_table(db))
    assert counts["answers"]["late"] > 0
    assert orphans > 0
    assert counts["accounts"] == vault_rows(db) + orphans == 200 + orphans
    assert run_report(db.sessions, repair=False, origin="test").orphans == orphans


def test_every_worker_restarted_mid_outage_loses_nothing_and_repeats_no_creation(
    stack: Stack, db: Database, user: NewUser
) -> None:
    """Slices given back while waiting keep their attempts; a killed worker loses nothing."""
    provider = ReferenceServer(stack, "--latency-ms", "5", "--outage-retry-after", "2")
    env = provider.env(**PUSHBACK_ENV, TALLY_SLICE_MAX_ATTEMPTS="2")
    stack.reconcile(env=env)
    url = stack.web(env=env)
    worker = stack.worker(threads=2, processes=2, env=env)
    worker.wait_for_log(WORKER_READY, count=2, timeout=60)
    submit(url, user.token, [300, 300])
    wait_for(lambda: provider.counts()["accounts"] >= 50, timeout=30)
    provider.outage(7.0)
    wait_for(lambda: provider.counts()["answers"].get("503", 0) > 0, timeout=10)
    wait_for(lambda: deferred_slices(db) > 0, timeout=10, interval=0.05)
    worker.kill()
    started = time.monotonic()
    stack.worker(threads=2, processes=2, env=env)
    settle(db, started, "every worker killed mid-outage", after="the restart")

    assert_exact(db, all_successful=True)
    counts = provider.counts()
    assert counts["accounts"] == vault_rows(db) == 600
    assert counts["keys_with_several_accounts"] == 0
    assert all(row.failure_reasons == {} for row in jobs_table(db))


def test_without_a_configured_limit_the_adaptive_rate_keeps_429s_rare(
    stack: Stack, db: Database, user: NewUser
) -> None:
    """Fast answers (a window of calls in flight cannot hold them under the limit) and a
    few late ones (which would hold such a window's places) still see few 429s."""
    provider = ReferenceServer(
        stack, "--rate-limit", "100", "--late-fraction", "0.02", "--late-seconds", "2"
    )
    env = provider.env(**PUSHBACK_ENV)
    stack.reconcile(env=env)
    url = stack.web(env=env)
    stack.worker(threads=4, env=env)
    started = time.monotonic()
    submit(url, user.token, [150, 150])
    settle(db, started, "adaptive rate", after="the submit")

    assert_exact(db, all_successful=True)
    counts = provider.counts()
    throttled = counts["answers"].get("429", 0) / counts["requests"]
    print(f"\n[pushback] adaptive rate: {throttled:.1%} of {counts['requests']} were 429")
    assert counts["accounts"] == vault_rows(db) == 300
    assert throttled < 0.05


def test_patience_counts_within_each_job_not_from_an_earlier_one(
    stack: Stack, db: Database, user: NewUser
) -> None:
    """A job started late into an outage waits its own patience, and ends with every account."""
    provider = ReferenceServer(stack, "--outage-retry-after", "1")
    env = provider.env(**{**PUSHBACK_ENV, "TALLY_PROVIDER_PATIENCE": "4"})
    stack.reconcile(env=env)
    url = stack.web(env=env)
    stack.worker(threads=2, env=env)
    provider.outage(600)
    [early] = submit(url, user.token, [20])
    wait_for(lambda: job_answer(url, user.token, early)["status"] == "completed", timeout=30)
    [late] = submit(url, user.token, [20])
    wait_for(lambda: job_answer(url, user.token, late)["waiting"], timeout=10, interval=0.05)
    provider.reset()  # the maintenance ends while the late job is within its patience
    started = time.monotonic()
    settle(db, started, "patience within each job", after="the outage")

    assert_exact(db, all_successful=False)
    assert job_answer(url, user.token, early)["failures_by_reason"] == {"provider_unavailable": 20}
    assert job_answer(url, user.token, late)["successful"] == 20


def test_a_cancel_during_an_outage_ends_the_job_without_waiting_for_the_patience(
    stack: Stack, db: Database, user: NewUser
) -> None:
    """A cancelled job stops waiting for its provider; every account it made is kept."""
    provider = ReferenceServer(stack, "--latency-ms", "20", "--outage-retry-after", "1")
    # The slice would wait 60 s before being given back: only the cancel can end it sooner.
    waits = {"TALLY_PROVIDER_PATIENCE": "600", "TALLY_SLICE_WAIT_SECONDS": "60"}
    env = provider.env(**{**PUSHBACK_ENV, **waits})
    stack.reconcile(env=env)
    url = stack.web(env=env)
    stack.worker(threads=2, env=env)
    [job_id] = submit(url, user.token, [2000])
    wait_for(lambda: provider.counts()["accounts"] >= 50, timeout=30)
    provider.outage(600)
    wait_for(lambda: job_answer(url, user.token, job_id)["waiting"] is not None, 10, 0.05)
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {user.token}"}
    cancel = httpx.post(f"{url}/api/job/{job_id}/cancel", headers=headers, timeout=10)
    assert cancel.status_code in (200, 202), cancel.text
    # Well before the slice's 60 s wait would have given it back.
    wait_for(lambda: job_answer(url, user.token, job_id)["status"] == "cancelled", 20, 0.05)
    settle(db, started, "a cancel during an outage", after="the cancel")

    assert_exact(db, all_successful=False)
    answer = job_answer(url, user.token, job_id)
    assert answer["status"] == "cancelled"
    assert answer["successful"] == provider.counts()["accounts"] == vault_rows(db) > 0
    assert answer["cancelled"] == 2000 - answer["successful"] - answer["failures"] > 0
    assert answer["orphans"] == 0


def test_an_outage_with_a_hundred_queued_jobs_ends_with_every_job_and_all_its_accounts(
    stack: Stack, db: Database, user: NewUser
) -> None:
    """An outage longer than TALLY_SLICE_WAIT_SECONDS over 100 queued jobs, scaled to seconds:
    the slices waiting on it are given back with delayed messages, and every job then
    finishes with all its accounts, none created twice, no slice's attempts used up."""
    provider = ReferenceServer(stack, "--latency-ms", "2", "--outage-retry-after", "1")
    env = provider.env(**PUSHBACK_ENV, TALLY_SLICE_MAX_ATTEMPTS="2")
    limits = {"TALLY_USER_MAX_UNFINISHED_JOBS": "0", "TALLY_USER_SUBMITS_PER_MINUTE": "0"}
    stack.reconcile(env=env)
    url = stack.web(env={**env, **limits})
    worker = stack.worker(threads=2, processes=2, env=env)
    worker.wait_for_log(WORKER_READY, count=2, timeout=60)
    provider.outage(600)  # ended below, once the 1 s slice wait has given slices back
    job_ids = submit(url, user.token, [3] * 100)
    wait_for(lambda: deferred_slices(db) > 0, timeout=60, interval=0.05)
    outage_ends = database_now(db)
    provider.outage(0)
    started = time.monotonic()
    settle(db, started, "100 queued jobs through an outage", after="the last submit")

    assert_exact(db, all_successful=True)
    counts = provider.counts()
    assert counts["answers"].get("503", 0) > 0, "the outage was never met"
    assert counts["accounts"] == vault_rows(db) == 300
    assert counts["keys_with_several_accounts"] == 0
    rows = jobs_table(db)
    assert len(rows) == len(job_ids) == 100
    assert all(row.failure_reasons == {} and row.orphans == 0 for row in rows)
    assert earliest_finish(db) > outage_ends
    assert max_slice_attempts(db) < 2  # each wait handed its attempt back


def test_a_retry_of_slots_whose_answers_were_lost_asks_with_their_keys_and_makes_none_twice(
    stack: Stack, db: Database, user: NewUser
) -> None:
    """The provider creates every account but its answers never arrive: the job's slots fail
    once the patience runs out, each with an account at the provider. Retrying them asks with
    the same keys, so the provider answers those accounts and creates none again."""
    provider = ReferenceServer(stack)
    env = provider.env(**{**PUSHBACK_ENV, "TALLY_PROVIDER_PATIENCE": "2"})
    stack.reconcile(env=env)
    url = stack.web(env=env)
    stack.worker(threads=2, env=env)
    provider.silence(600)
    started = time.monotonic()
    [parent_id] = submit(url, user.token, [40])
    settle(db, started, "answers lost past the patience", after="the submit")
    parent = job_answer(url, user.token, parent_id)
    assert (parent["successful"], parent["failures"]) == (0, 40)
    assert parent["orphans"] >= 40
    assert provider.counts()["accounts"] == 40

    provider.silence(0)
    headers = {"Authorization": f"Bearer {user.token}"}
    retried = httpx.post(f"{url}/api/job/{parent_id}/retry", headers=headers, timeout=10)
    assert retried.status_code == 201, retried.text
    child_id = uuid.UUID(retried.json()["id"])
    started = time.monotonic()
    settle(db, started, "the retry", after="the retry")

    child = job_answer(url, user.token, child_id)
    assert (child["status"], child["successful"], child["orphans"]) == ("completed", 40, 0)
    counts = provider.counts()
    assert counts["accounts"] == vault_rows(db) == 40
    assert counts["keys_with_several_accounts"] == 0
    assert set(counts["accounts_by_key"]) == {f"{parent_id}:{i}" for i in range(40)}
    assert_exact(db, all_successful=False)


def database_now(db: Database) -> float:
    """The database's clock, in epoch seconds (the clock of the jobs' finished_at)."""
    with db.engine.connect() as connection:
        return float(connection.execute(text("SELECT extract(epoch FROM now())")).scalar_one())


def earliest_finish(db: Database) -> float:
    """When the first job finished, in epoch seconds."""
    query = text("SELECT extract(epoch FROM min(finished_at)) FROM jobs")
    with db.engine.connect() as connection:
        return float(connection.execute(query).scalar_one())


def max_slice_attempts(db: Database) -> int:
    """The most claims any slice has counted."""
    with db.engine.connect() as connection:
        query = text("SELECT max(attempts) FROM job_slices")
        return int(connection.execute(query).scalar_one())
