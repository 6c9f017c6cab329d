"""What the test database holds: unfinished jobs, the outbox backlog, invariants, totals."""

from __future__ import annotations

from sqlalchemy import text

from core.database import Database
from harness.outbox import apply_pending
from harness.waiting import wait_for
from reconcile.invariants import check_invariants


def unfinished_jobs(db: Database) -> int:
    """How many jobs are not terminal."""
    with db.engine.connect() as connection:
        return int(
            connection.execute(
                text("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")
            ).scalar_one()
        )


def wait_all_terminal(db: Database, timeout: float) -> None:
    """Wait until every job is completed, failed or cancelled."""
    wait_for(lambda: unfinished_jobs(db) == 0, timeout)


def pending_outbox(db: Database) -> int:
    """How many outbox rows are not applied yet."""
    with db.engine.connect() as connection:
        return int(
            connection.execute(
                text("SELECT count(*) FROM outbox WHERE applied_at IS NULL")
            ).scalar_one()
        )


def assert_invariants(db: Database, *, catch_up: bool = True) -> None:
    """Apply the outbox (unless told not to) and assert no drift at all."""
    if catch_up:
        apply_pending(db.sessions)
        assert pending_outbox(db) == 0
    drifts = check_invariants(db.sessions)
    assert drifts == [], drifts


def totals(db: Database) -> dict[str, int]:
    """Sums over every job, vault row and ledger entry: a fingerprint of the state."""
    query = text(
        "SELECT (SELECT count(*) FROM user_accounts) AS vault, "
        "(SELECT coalesce(sum(successful), 0) FROM jobs) AS successful, "
        "(SELECT coalesce(sum(failures), 0) FROM jobs) AS failures, "
        "(SELECT count(*) FROM credit_ledger) AS ledger_rows, "
        "(SELECT coalesce(sum(amount), 0) FROM credit_ledger) AS ledger_sum, "
        "(SELECT count(*) FROM outbox) AS outbox_rows, "
        "(SELECT coalesce(sum(successful), 0) FROM user_stats) AS stats_successful, "
        "(SELECT coalesce(sum(failures), 0) FROM user_stats) AS stats_failures, "
        "(SELECT coalesce(sum(business_centers), 0) FROM user_stats) AS stats_bc"
    )
    with db.engine.connect() as connection:
        return {k: int(v) for k, v in connection.execute(query).mappings().one().items()}
