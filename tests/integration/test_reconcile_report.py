"""Reconciliation reports: find exactly the drift that was introduced, repair exactly it."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from core import jobs
from core.cancel import cancel_job
from core.database import Database
from core.settings import SandboxOptions, Settings
from core.users import create_user
from harness.outbox import apply_pending
from reconcile.invariants import check_invariants
from reconcile.recompute import recompute_business_centers
from reconcile.report import run_report
from reconcile.report_store import get_report, list_reports
from tests.support.inline import process_job, slice_context
from worker.processing import run_turn


@dataclass(frozen=True)
class World:
    """Three users who each ran jobs to the end, with the outbox applied."""

    users: list[uuid.UUID]
    settings: Settings


@pytest.fixture
def world(db: Database, settings: Settings) -> World:
    config = settings.with_changes(sandbox=SandboxOptions(failure_rate=0.25), slice_size=20)
    users = [create_user(db.sessions, f"u{n}", credits=1000).user_id for n in range(3)]
    for user in users:
        for count in (30, 45):
            job = jobs.submit(db.sessions, config, jobs.JobRequest(user, count, "sandbox"))
            process_job(db, config, job.job.id)
    apply_pending(db.sessions)
    assert check_invariants(db.sessions) == []
    return World(users, config)


def scalar(db: Database, sql: str, **params: object) -> int:
    with db.engine.connect() as connection:
        return int(connection.execute(text(sql), params).scalar_one())


def stats_field(db: Database, user: uuid.UUID, field: str) -> int:
    return scalar(db, f"SELECT {field} FROM user_stats WHERE user_id = :u", u=user)


def corrupt(db: Database, sql: str, **params: object) -> None:
    """Change the database behind the system's back."""
    with db.engine.begin() as connection:
        assert connection.execute(text(sql), params).rowcount == 1  # type: ignore[attr-defined]


def updated_at(db: Database) -> dict[object, object]:
    """When each user's stats row last changed."""
    query = text("SELECT user_id, updated_at FROM user_stats")
    with db.engine.connect() as connection:
        return {user: stamp for user, stamp in connection.execute(query).all()}


def figures(drifts: Iterable[Any]) -> set[tuple[str, str, str, int, int]]:
    """Drifts (found or stored) as comparable tuples."""
    return {(d.subject, d.subject_id, d.field, d.expected, d.actual) for d in drifts}


def test_a_clean_database_gives_a_clean_stored_report(world: World, db: Database) -> None:
    report = run_report(db.sessions, repair=False, origin="cli")
    assert report.drift_count == 0 and report.drifts == [] and not report.repair
    assert report.users_checked == 3
    assert report.outbox_backlog == 0 and report.oldest_pending_seconds == 0.0
    assert report.jobs_swept is None
    stored = get_report(db.sessions, None)
    assert stored == report


def test_report_finds_exactly_the_corruptions_and_repair_fixes_exactly_them(
    world: World, db: Database
) -> None:
    stats_user, vault_user, balance_user = world.users
    failures = stats_field(db, stats_user, "failures")
    centers = stats_field(db, vault_user, "business_centers")
    balance = scalar(db, "SELECT balance FROM user_credits WHERE user_id = :u", u=balance_user)
    corrupt(db, "UPDATE user_stats SET failures = failures + 3 WHERE user_id = :u", u=stats_user)
    corrupt(  # a soft delete that skipped its vault.removed outbox row
        db,
        "UPDATE user_accounts SET deleted_at = now() WHERE id = "
        "(SELECT id FROM user_accounts WHERE user_id = :u ORDER BY id LIMIT 1)",
        u=vault_user,
    )
    corrupt(db, "UPDATE user_credits SET balance = balance + 5 WHERE user_id = :u", u=balance_user)
    introduced = {
        ("user", str(stats_user), "failures", failures, failures + 3),
        ("user", str(vault_user), "business_centers", centers - 1, centers),
        ("user", str(balance_user), "balance", balance, balance + 5),
    }

    found = run_report(db.sessions, repair=False, origin="cli")
    assert figures(found.drifts) == introduced
    assert found.drift_count == 3 and found.repaired_count == 0
    assert not any(d.repaired for d in found.drifts)
    assert figures(check_invariants(db.sessions)) == introduced  # nothing was changed

    repaired = run_report(db.sessions, repair=True, origin="cli")
    assert figures(repaired.drifts) == introduced
    assert repaired.repair and all(d.repaired for d in repaired.drifts)
    assert stats_field(db, stats_user, "failures") == failures
    assert stats_field(db, vault_user, "business_centers") == centers - 1
    assert scalar(db, "SELECT balance FROM user_credits WHERE user_id = :u", u=balance_user) == (
        balance
    )

    after = run_report(db.sessions, repair=False, origin="cli")
    assert after.drift_count == 0
    stored, total = list_reports(db.sessions, limit=10, offset=0)
    assert total == 3 and [r.drift_count for r in stored] == [0, 3, 3]
    assert [r.repaired_count for r in stored] == [0, 3, 0]


def test_repair_corrects_a_balance_from_the_ledger_without_writing_to_it(
    world: World, db: Database
) -> None:
    user = world.users[0]
    ledger_rows = scalar(db, "SELECT count(*) FROM credit_ledger")
    ledger_sum = scalar(db, "SELECT sum(amount) FROM credit_ledger WHERE user_id = :u", u=user)
    corrupt(db, "UPDATE user_credits SET balance = balance - 7 WHERE user_id = :u", u=user)
    report = run_report(db.sessions, repair=True, origin="cli")
    assert figures(report.drifts) == {("user", str(user), "balance", ledger_sum, ledger_sum - 7)}
    assert report.repaired_count == 1
    assert scalar(db, "SELECT balance FROM user_credits WHERE user_id = :u", u=user) == ledger_sum
    assert scalar(db, "SELECT count(*) FROM credit_ledger") == ledger_rows


def test_a_missing_stats_row_is_found_and_recreated(world: World, db: Database) -> None:
    user = world.users[1]
    with db.engine.connect() as connection:
        before = dict(
            connection.execute(
                text(
                    "SELECT requested, successful, failures, business_centers "
                    "FROM user_stats WHERE user_id = :u"
                ),
                {"u": user},
            )
            .mappings()
            .one()
        )
    corrupt(db, "DELETE FROM user_stats WHERE user_id = :u", u=user)
    report = run_report(db.sessions, repair=True, origin="cli")
    assert figures(report.drifts) == {
        ("user", str(user), field, value, 0) for field, value in before.items() if value
    }
    assert all(d.repaired for d in report.drifts)
    for field, value in before.items():
        assert stats_field(db, user, field) == value
    assert check_invariants(db.sessions) == []


def test_job_drift_is_reported_and_never_repaired(world: World, db: Database) -> None:
    user = world.users[2]
    with db.engine.connect() as connection:
        job_id, successful = connection.execute(
            text(
                "SELECT j.id, j.successful FROM jobs j WHERE j.user_id = :u AND j.successful > 0 "
                "ORDER BY j.id LIMIT 1"
            ),
            {"u": user},
        ).one()
    centers = stats_field(db, user, "business_centers")
    corrupt(  # a vault row deleted outright, outside the product
        db,
        "DELETE FROM user_accounts WHERE id = "
        "(SELECT id FROM user_accounts WHERE job_id = :j ORDER BY id LIMIT 1)",
        j=job_id,
    )
    report = run_report(db.sessions, repair=True, origin="cli")
    assert figures(report.drifts) == {
        ("job", str(job_id), "vault_rows", successful, successful - 1),
        ("user", str(user), "business_centers", centers - 1, centers),
    }
    repaired = {(d.subject, d.field): d.repaired for d in report.drifts}
    assert repaired == {("job", "vault_rows"): False, ("user", "business_centers"): True}
    assert report.unrepaired == 1
    assert figures(check_invariants(db.sessions)) == {
        ("job", str(job_id), "vault_rows", successful, successful - 1)
    }


def test_a_balance_the_ledger_would_make_negative_is_left_alone(world: World, db: Database) -> None:
    user = world.users[0]
    balance = scalar(db, "SELECT balance FROM user_credits WHERE user_id = :u", u=user)
    corrupt(db, "DELETE FROM credit_ledger WHERE user_id = :u AND kind = 'grant'", u=user)
    ledger_sum = scalar(db, "SELECT sum(amount) FROM credit_ledger WHERE user_id = :u", u=user)
    assert ledger_sum < 0
    report = run_report(db.sessions, repair=True, origin="cli")
    assert figures(report.drifts) == {("user", str(user), "balance", ledger_sum, balance)}
    assert report.repaired_count == 0
    assert scalar(db, "SELECT balance FROM user_credits WHERE user_id = :u", u=user) == balance


def test_drift_is_logged_as_a_warning_with_its_figures(
    world: World, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    user = world.users[0]
    requested = stats_field(db, user, "requested")
    corrupt(db, "UPDATE user_stats SET requested = 0 WHERE user_id = :u", u=user)
    with caplog.at_level("WARNING", logger="reconcile.report"):
        run_report(db.sessions, repair=False, origin="cli")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(
        str(user) in m and "requested" in m and f"expected {requested} actual 0" in m
        for m in warnings
    )


def test_recompute_ignores_a_running_jobs_rows_until_its_completion_is_applied(
    db: Database, settings: Settings
) -> None:
    config = settings.with_changes(slice_size=10)
    user = create_user(db.sessions, "runner", credits=100).user_id
    job = jobs.submit(db.sessions, config, jobs.JobRequest(user, 20, "sandbox")).job
    with slice_context(db, config) as context:
        run_turn(context)  # half the job is in the vault (a turn takes one slice of 10)
    assert scalar(db, "SELECT count(*) FROM user_accounts WHERE user_id = :u", u=user) == 10
    recompute_business_centers(db.sessions)
    assert check_invariants(db.sessions) == []
    assert scalar(db, "SELECT count(*) FROM user_stats WHERE business_centers <> 0") == 0

    process_job(db, config, job.id)
    apply_pending(db.sessions)
    assert stats_field(db, user, "business_centers") == 20
    assert recompute_business_centers(db.sessions) == 0
    assert check_invariants(db.sessions) == []


def test_recompute_writes_only_the_rows_that_changed(world: World, db: Database) -> None:
    first, second, _ = world.users
    assert recompute_business_centers(db.sessions) == 0
    corrupt(db, "UPDATE user_stats SET business_centers = 999 WHERE user_id = :u", u=first)
    corrupt(db, "DELETE FROM user_stats WHERE user_id = :u", u=second)
    stamps = updated_at(db)
    assert recompute_business_centers(db.sessions) == 2
    after = updated_at(db)
    assert {u for u in after if after[u] != stamps.get(u)} == {first, second}
    remaining = check_invariants(db.sessions)  # the counters the recompute does not own
    assert remaining and {d.subject_id for d in remaining} == {str(second)}
    assert "business_centers" not in {d.field for d in remaining}


def test_cancelled_jobs_report_clean_and_their_damaged_counts_are_found(
    world: World, db: Database
) -> None:
    user = world.users[2]
    queued = jobs.submit(db.sessions, world.settings, jobs.JobRequest(user, 50, "sandbox")).job
    cancelled = cancel_job(db.sessions, user, queued.id)
    assert (cancelled.status, cancelled.cancelled) == ("cancelled", 50)
    apply_pending(db.sessions)
    assert run_report(db.sessions, repair=False, origin="cli").drift_count == 0
    corrupt(db, "UPDATE jobs SET cancelled = 49 WHERE id = :j", j=queued.id)
    refusing = world.settings.with_changes(sandbox=SandboxOptions(failure_rate=1.0))
    other = jobs.submit(db.sessions, refusing, jobs.JobRequest(user, 5, "sandbox")).job
    process_job(db, refusing, other.id)  # every item fails
    apply_pending(db.sessions)
    # A completed job that claims a failed item was never attempted (its user's failures
    # no longer add up either).
    corrupt(db, "UPDATE jobs SET cancelled = 1, failures = failures - 1 WHERE id = :j", j=other.id)
    found = run_report(db.sessions, repair=False, origin="cli")
    assert {(d.subject_id, d.field) for d in found.drifts} == {
        (str(queued.id), "outcomes"),
        (str(other.id), "cancelled"),
        (str(user), "failures"),
    }
