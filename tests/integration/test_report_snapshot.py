"""Reports and recomputes read one snapshot without a lock: applies never wait for them."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from core import jobs
from core.database import Database, SessionFactory
from core.settings import SandboxOptions, Settings
from core.users import create_user
from harness.outbox import apply_pending
from outbox.apply import apply_batch
from reconcile import report as reports
from reconcile.invariants import check_invariants, find_drift
from reconcile.recompute import recompute_business_centers
from reconcile.report import run_report
from reconcile.snapshot import begin_snapshot
from tests.support.inline import process_job


def finish_job(db: Database, settings: Settings, user: uuid.UUID, count: int) -> uuid.UUID:
    """Submit and run one job inline; its completion stays pending in the outbox."""
    job = jobs.submit(db.sessions, settings, jobs.JobRequest(user, count, "sandbox")).job
    process_job(db, settings, job.id)
    return job.id


def pending(db: Database) -> int:
    with db.engine.connect() as connection:
        query = text("SELECT count(*) FROM outbox WHERE applied_at IS NULL")
        return int(connection.execute(query).scalar_one())


@pytest.fixture
def config(settings: Settings) -> Settings:
    return settings.with_changes(sandbox=SandboxOptions(failure_rate=0.25), slice_size=20)


@pytest.fixture
def users(db: Database) -> list[uuid.UUID]:
    return [create_user(db.sessions, f"u{n}", credits=100_000).user_id for n in range(3)]


@pytest.fixture
def traffic(db: Database, config: Settings, users: list[uuid.UUID]) -> Iterator[threading.Event]:
    """Jobs finishing and being applied in two threads until the test ends."""
    stop = threading.Event()

    def finish() -> None:
        n = 0
        while not stop.is_set():
            finish_job(db, config, users[n % len(users)], 5 + n % 7)
            n += 1

    def apply() -> None:
        while not stop.is_set():
            apply_batch(db.sessions, 3)

    with ThreadPoolExecutor(2) as pool:
        running = [pool.submit(finish), pool.submit(apply)]
        try:
            yield stop
        finally:
            stop.set()
            for future in running:
                future.result(timeout=60)


def test_reports_while_applies_go_on_find_no_drift(db: Database, traffic: threading.Event) -> None:
    for _ in range(15):
        report = run_report(db.sessions, repair=False, origin="cli")
        assert report.drift_count == 0, report.drifts
    with db.engine.connect() as connection:
        query = "SELECT count(*) FROM outbox WHERE applied_at IS NOT NULL"
        assert connection.execute(text(query)).scalar_one() > 0
    assert recompute_business_centers(db.sessions) == 0


def test_a_report_while_applies_go_on_finds_a_real_drift(
    db: Database, users: list[uuid.UUID], traffic: threading.Event
) -> None:
    victim = users[0]
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO user_stats (user_id, failures) VALUES (:u, 3) ON CONFLICT (user_id) "
                "DO UPDATE SET failures = user_stats.failures + 3"
            ),
            {"u": victim},
        )
    report = run_report(db.sessions, repair=False, origin="cli")
    assert [(d.subject_id, d.field, d.actual - d.expected) for d in report.drifts] == [
        (str(victim), "failures", 3)
    ]


def test_an_apply_commits_while_a_report_snapshot_is_open(
    db: Database, config: Settings, users: list[uuid.UUID]
) -> None:
    finish_job(db, config, users[0], 10)
    assert pending(db) == 1
    with db.sessions() as report, report.begin():
        begin_snapshot(report)
        assert find_drift(report) == []
        report_pid = report.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(apply_batch, db.sessions).result(timeout=30).rows == 1
        with db.engine.connect() as connection:
            state = connection.execute(
                text("SELECT state FROM pg_stat_activity WHERE pid = :p"), {"p": report_pid}
            ).scalar_one()
            held = connection.execute(
                text("SELECT count(*) FROM pg_locks WHERE pid = :p AND locktype = 'advisory'"),
                {"p": report_pid},
            ).scalar_one()
        assert state == "idle in transaction" and held == 0
        assert find_drift(report) == []  # still the snapshot from before the apply
    assert pending(db) == 0
    assert check_invariants(db.sessions) == []


def test_repair_while_the_outbox_moves_checks_again(
    db: Database, config: Settings, users: list[uuid.UUID]
) -> None:
    finish_job(db, config, users[1], 10)
    apply_pending(db.sessions)
    with db.engine.begin() as connection:
        connection.execute(
            text("UPDATE user_stats SET requested = requested + 4 WHERE user_id = :u"),
            {"u": users[1]},
        )
    finish_job(db, config, users[2], 10)  # pending: the first repair finds it applied
    checks: list[int] = []
    real_check = reports.check

    def check_then_apply(sessions: SessionFactory) -> reports.Check:
        found = real_check(db.sessions)
        checks.append(len(found.drifts))
        if len(checks) == 1:
            apply_batch(db.sessions)  # the outbox moves between the check and the repair
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reports, "check", check_then_apply)
        done = run_report(db.sessions, repair=True, origin="cli")
    assert checks == [1, 1]
    assert [(d.field, d.repaired) for d in done.drifts] == [("requested", True)]
    assert check_invariants(db.sessions) == []
