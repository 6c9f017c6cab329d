"""unfinished jobs by their last change (the oldest is one index probe for /metrics); the
trace an outbox row was written in

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-03 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0014"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNFINISHED = "status IN ('queued', 'running')"


def upgrade() -> None:
    op.create_index(
        "ix_jobs_unfinished_updated_at",
        "jobs",
        ["updated_at"],
        postgresql_where=sa.text(UNFINISHED),
    )
    op.add_column("outbox", sa.Column("trace_context", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "trace_context")
    op.drop_index("ix_jobs_unfinished_updated_at", table_name="jobs")
