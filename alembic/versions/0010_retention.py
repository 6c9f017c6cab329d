"""retention: indexes that make each prune batch an index range

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-03 08:20:00.000000

- Applied outbox rows, oldest applied first (reconcile/retention.py deletes them after
  TALLY_RETENTION_DAYS).
- Done slices, oldest finished first (the slices of finished jobs go after the same time).

Both are built CONCURRENTLY, so a large table keeps taking writes while they are made.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0010"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_outbox_applied_at",
            "outbox",
            ["applied_at"],
            postgresql_where=sa.text("applied_at IS NOT NULL"),
            postgresql_concurrently=True,
            if_not_exists=True,
        )
        op.create_index(
            "ix_job_slices_finished_at",
            "job_slices",
            ["finished_at"],
            postgresql_where=sa.text("status = 'done'"),
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_job_slices_finished_at",
            table_name="job_slices",
            postgresql_concurrently=True,
            if_exists=True,
        )
        op.drop_index(
            "ix_outbox_applied_at",
            table_name="outbox",
            postgresql_concurrently=True,
            if_exists=True,
        )
