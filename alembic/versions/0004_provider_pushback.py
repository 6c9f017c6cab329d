"""why a job waits on its provider, its failures by reason, and its orphans

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 11:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("waiting", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("jobs", sa.Column("orphans", sa.Integer(), server_default="0", nullable=False))
    op.add_column(
        "jobs",
        sa.Column(
            "failure_reasons",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column(
        "reconcile_reports",
        sa.Column("orphans", sa.Integer(), server_default="0", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_jobs_waiting_known"),
        "jobs",
        "waiting IN ('provider_rate_limited', 'provider_unavailable')",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_jobs_waiting_known"), "jobs", type_="check")
    op.drop_column("reconcile_reports", "orphans")
    op.drop_column("jobs", "failure_reasons")
    op.drop_column("jobs", "orphans")
    op.drop_column("jobs", "retry_at")
    op.drop_column("jobs", "waiting")
