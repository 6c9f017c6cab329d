"""unfinished jobs by their last change, so the oldest is one index probe for /metrics

Revision ID: 0014
Revises: 0007
Create Date: 2026-12-03 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0014"
down_revision: str | None = "0007"
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


def downgrade() -> None:
    op.drop_index("ix_jobs_unfinished_updated_at", table_name="jobs")
