"""flat reads and wide counters: keyset indexes, list totals, BIGINT counters, quarantine

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 08:00:00.000000

- The jobs and vault lists page by (created_at, id), newest first: their indexes gain `id`.
- `user_credits` keeps each user's number of jobs and ledger entries (`jobs_total`,
  `ledger_total`), moved by the statement that moves the balance in the same transaction. Every
  write of a job or a ledger entry already locks that user's credits row, so the counters
  add no lock and no lock order of their own; list pages read their total there.
- `user_stats` counters and the job counters become BIGINT (a rewrite of both tables
  under an exclusive lock: run it in a quiet moment on a large database).
- An outbox row the apply cannot apply is set aside: `quarantined_at` and `error`; each
  reconciliation report says how many were (`outbox_quarantined`).
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATS_COUNTERS = ("requested", "successful", "failures", "business_centers")
JOB_COUNTERS = ("requested", "successful", "failures", "cancelled", "orphans")
TOTALS = {"jobs": "jobs_total", "credit_ledger": "ledger_total"}


def upgrade() -> None:
    _widen("bigint")
    op.add_column("outbox", sa.Column("quarantined_at", sa.DateTime(timezone=True)))
    op.add_column("outbox", sa.Column("error", sa.Text()))
    op.add_column(
        "reconcile_reports",
        sa.Column("outbox_quarantined", sa.Integer(), server_default="0", nullable=False),
    )
    op.drop_index("ix_jobs_user_id_created_at", table_name="jobs")
    op.create_index(
        "ix_jobs_user_id_created_at_id",
        "jobs",
        ["user_id", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
    )
    op.drop_index(
        "ix_user_accounts_live",
        table_name="user_accounts",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_user_accounts_live",
        "user_accounts",
        ["user_id", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    for table, column in TOTALS.items():
        op.add_column(
            "user_credits",
            sa.Column(column, sa.BigInteger(), server_default="0", nullable=False),
        )
        op.execute(
            f"UPDATE user_credits c SET {column} = t.n "
            f"FROM (SELECT user_id, count(*) AS n FROM {table} GROUP BY user_id) t "
            "WHERE t.user_id = c.user_id"
        )


def downgrade() -> None:
    for column in TOTALS.values():
        op.drop_column("user_credits", column)
    op.drop_index(
        "ix_user_accounts_live",
        table_name="user_accounts",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_user_accounts_live",
        "user_accounts",
        ["user_id", "created_at"],
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index("ix_jobs_user_id_created_at_id", table_name="jobs")
    op.create_index(
        "ix_jobs_user_id_created_at", "jobs", ["user_id", sa.literal_column("created_at DESC")]
    )
    op.drop_column("reconcile_reports", "outbox_quarantined")
    op.drop_column("outbox", "error")
    op.drop_column("outbox", "quarantined_at")
    _widen("integer")


def _widen(after: str) -> None:
    """Retype the counters, one ALTER TABLE (one rewrite) per table."""
    for table, columns in (("user_stats", STATS_COUNTERS), ("jobs", JOB_COUNTERS)):
        changes = ", ".join(f"ALTER COLUMN {column} TYPE {after}" for column in columns)
        op.execute(f"ALTER TABLE {table} {changes}")
