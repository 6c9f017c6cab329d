"""reconciliation reports, their drift rows, and reconcile daemon heartbeats

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.TextClause:
    return sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "reconcile_reports",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("users_checked", sa.Integer(), nullable=False),
        sa.Column("outbox_backlog", sa.Integer(), nullable=False),
        sa.Column("oldest_pending_seconds", sa.Float(), nullable=False),
        sa.Column("jobs_swept", sa.Integer(), nullable=True),
        sa.Column("slices_resent", sa.Integer(), nullable=True),
        sa.Column("drift_count", sa.Integer(), nullable=False),
        sa.Column("repair", sa.Boolean(), nullable=False),
        sa.Column("repaired_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconcile_reports")),
    )
    op.create_table(
        "reconcile_drifts",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("report_id", sa.BigInteger(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("subject_id", sa.Text(), nullable=False),
        sa.Column("field", sa.Text(), nullable=False),
        sa.Column("expected", sa.BigInteger(), nullable=False),
        sa.Column("actual", sa.BigInteger(), nullable=False),
        sa.Column("repaired", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["reconcile_reports.id"],
            name=op.f("fk_reconcile_drifts_report_id_reconcile_reports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconcile_drifts")),
    )
    op.create_index(
        "ix_reconcile_drifts_report_id_id", "reconcile_drifts", ["report_id", "id"], unique=False
    )
    op.create_table(
        "reconcile_heartbeats",
        sa.Column("daemon_id", sa.UUID(), nullable=False),
        sa.Column("hostname", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("is_leader", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("outbox_backlog", sa.Integer(), server_default="0", nullable=False),
        sa.Column("oldest_pending_seconds", sa.Float(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("daemon_id", name=op.f("pk_reconcile_heartbeats")),
    )


def downgrade() -> None:
    op.drop_table("reconcile_heartbeats")
    op.drop_index("ix_reconcile_drifts_report_id_id", table_name="reconcile_drifts")
    op.drop_table("reconcile_drifts")
    op.drop_table("reconcile_reports")
