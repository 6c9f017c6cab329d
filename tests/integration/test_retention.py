"""Retention: the leader prunes history in small batches; reports stay exact; jobs, ledger and
vault are never touched; an apply never waits for a prune."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from sqlalchemy import text

from core import jobs
from core.database import Database
from core.settings import SandboxOptions, Settings
from core.users import create_user
from harness.outbox import apply_pending
from harness.stack import Stack
from harness.waiting import wait_for
from outbox.apply import apply_batch
from reconcile.invariants import check_invariants
from reconcile.report import run_report
from reconcile.retention import OUTBOX, Policy, prune
from tests.support.inline import process_job

DAY = 86_400.0
# What must never change: the users' records, and what they add up to.
RECORDS = (
    "SELECT (SELECT count(*) FROM jobs) AS jobs, (SELECT count(*) FROM credit_ledger) AS ledger, "
    "(SELECT count(*) FROM user_accounts) AS vault, (SELECT sum(amount) FROM credit_ledger) AS "
    "credits, (SELECT sum(successful) FROM user_stats) AS created"
)


def rows(db: Database, sql: str) -> dict[str, int]:
    with db.engine.connect() as connection:
        found = connection.execute(text(sql)).mappings().one()
    return {name: int(value or 0) for name, value in found.items()}


def count(db: Database, table: str, where: str = "true") -> int:
    return rows(db, f"SELECT count(*) AS n FROM {table} WHERE {where}")["n"]


def age(db: Database, sql: str) -> None:
    """Move timestamps into the past, as if the rows were written long ago."""
    with db.engine.begin() as connection:
        connection.execute(text(sql))


def run_jobs(db: Database, settings: Settings, user: uuid.UUID, sizes: list[int]) -> None:
    for size in sizes:
        job = jobs.submit(db.sessions, settings, jobs.JobRequest(user, size, "sandbox")).job
        process_job(db, settings, job.id)


@pytest.fixture
def config(settings: Settings) -> Settings:
    return settings.with_changes(sandbox=SandboxOptions(failure_rate=0.25), slice_size=10)


@pytest.fixture
def history(db: Database, config: Settings) -> list[uuid.UUID]:
    """Two users' finished, applied jobs, all of it 40 days old, and six old reports."""
    users = [create_user(db.sessions, f"u{n}", credits=10_000).user_id for n in range(2)]
    for user in users:
        run_jobs(db, config, user, [25, 40, 7])
    apply_pending(db.sessions)
    for _ in range(6):
        run_report(db.sessions, repair=False, origin="cli")
    age(db, "UPDATE outbox SET applied_at = applied_at - interval '40 days'")
    age(db, "UPDATE job_slices SET finished_at = finished_at - interval '40 days'")
    age(
        db,
        "INSERT INTO reconcile_heartbeats (daemon_id, hostname, pid, last_seen) "
        "VALUES (gen_random_uuid(), 'gone', 1, now() - interval '2 days')",
    )
    return users


def never_stop() -> bool:
    return False


def test_prune_removes_everything_prunable_and_reports_stay_exact(
    db: Database, config: Settings, history: list[uuid.UUID]
) -> None:
    # Recent history that must stay: a job finished now (applied and pending rows), and a
    # job still running, whose done slice is old.
    run_jobs(db, config, history[0], [12])
    apply_pending(db.sessions)
    run_jobs(db, config, history[1], [9])
    running = jobs.submit(db.sessions, config, jobs.JobRequest(history[1], 30, "sandbox")).job
    age(
        db,
        f"UPDATE job_slices SET status = 'done', finished_at = now() - interval '40 days' "
        f"WHERE job_id = '{running.id}' AND slice_index = 0",
    )
    records = rows(db, RECORDS)
    old_outbox = count(db, "outbox", "applied_at < now() - interval '30 days'")
    old_slices = count(db, "job_slices", "finished_at < now() - interval '30 days'") - 1
    assert old_outbox == 6 and old_slices > 10

    policy = Policy(age_seconds=30 * DAY, reports_kept=2, batch=3)  # several batches each
    pruned = prune(db.sessions, policy, never_stop)

    assert (pruned.outbox, pruned.slices, pruned.reports, pruned.heartbeats) == (
        old_outbox,
        old_slices,
        4,
        1,
    )
    assert count(db, "outbox") == 2  # the recent applied row and the pending one
    assert count(db, "outbox", "applied_at IS NULL") == 1
    assert count(db, "job_slices", f"job_id = '{running.id}'") == 3
    assert count(db, "job_slices", f"job_id <> '{running.id}'") == 3  # the recent jobs'
    assert count(db, "reconcile_reports") == 2
    assert count(db, "reconcile_drifts", "report_id NOT IN (SELECT id FROM reconcile_reports)") == 0
    assert count(db, "reconcile_heartbeats") == 0
    assert rows(db, RECORDS) == records
    assert check_invariants(db.sessions) == []
    assert run_report(db.sessions, repair=False, origin="cli").drift_count == 0
    apply_pending(db.sessions)
    assert check_invariants(db.sessions) == []
    again = prune(db.sessions, policy, never_stop)  # only the report made since goes
    assert (again.outbox, again.slices, again.reports) == (0, 0, 1)


def test_old_reports_go_with_their_drift_rows(db: Database, history: list[uuid.UUID]) -> None:
    age(db, "UPDATE user_stats SET failures = failures + 1")  # every later report has drift
    kept = [run_report(db.sessions, repair=False, origin="cli").id for _ in range(3)]
    assert count(db, "reconcile_drifts") == 6
    pruned = prune(db.sessions, Policy(30 * DAY, reports_kept=2, batch=1), never_stop)
    assert (pruned.reports, pruned.drifts) == (7, 2)
    assert rows(db, "SELECT min(id) AS first FROM reconcile_reports")["first"] == kept[1]
    assert count(db, "reconcile_drifts") == 4


def test_an_apply_commits_while_a_prune_batch_is_open(
    db: Database, config: Settings, history: list[uuid.UUID]
) -> None:
    run_jobs(db, config, history[0], [5])
    with db.sessions() as pruning, pruning.begin():
        deleted = pruning.execute(OUTBOX, {"age": 30 * DAY, "limit": 1000})
        assert deleted.rowcount == 6  # type: ignore[attr-defined]
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(apply_batch, db.sessions).result(timeout=30).rows == 1
    assert count(db, "outbox") == 1
    assert check_invariants(db.sessions) == []


def test_the_daemon_prunes_history_and_its_reports_stay_clean(
    db: Database,
    config: Settings,
    process_env: dict[str, str],
    tmp_path: Path,
    redis_client: redis.Redis[bytes],
) -> None:
    users = [create_user(db.sessions, f"d{n}", credits=10_000).user_id for n in range(2)]
    for user in users:
        run_jobs(db, config, user, [15, 8])
    env = {
        "TALLY_APPLY_INTERVAL": "0.2",
        "TALLY_REPORT_INTERVAL": "1",
        "TALLY_RETENTION_INTERVAL": "0.5",
        "TALLY_RETENTION_DAYS": "0.00002",  # under 2 s
        "TALLY_REPORTS_KEPT": "2",
        "TALLY_RETENTION_BATCH": "2",
    }
    with Stack({**process_env, **env}, tmp_path / "logs") as stack:
        stack.reconcile()
        wait_for(lambda: count(db, "outbox") == 0 and count(db, "job_slices") == 0, 60)
        wait_for(lambda: count(db, "reconcile_reports") >= 2, 60)
        first = rows(db, "SELECT max(id) AS n FROM reconcile_reports")["n"]
        wait_for(lambda: rows(db, "SELECT min(id) AS n FROM reconcile_reports")["n"] > first, 60)
        assert count(db, "reconcile_reports") <= 3  # two kept, and one being written at most
        assert count(db, "reconcile_drifts") == 0
    assert count(db, "jobs") == 4
    assert check_invariants(db.sessions) == []
    assert run_report(db.sessions, repair=False, origin="cli").drift_count == 0
