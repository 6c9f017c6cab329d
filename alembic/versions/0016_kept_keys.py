"""ambiguous slots keep their provider keys: a retry asks with the key the first calls used

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 13:40:00.000000

`ambiguous_items` holds each failed slot whose provider calls went unanswered (the account
may exist at the provider) with the key those calls used; `kept_keys` holds each slot of a
retry that asks with such a key instead of its own, written with the retry's job.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = postgresql.UUID(as_uuid=True)


def _slot_keys(table: str) -> None:
    op.create_table(
        table,
        sa.Column("job_id", UUID, nullable=False),
        sa.Column("item_index", sa.Integer(), nullable=False),
        sa.Column("provider_key", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f(f"fk_{table}_job_id_jobs")),
        sa.PrimaryKeyConstraint("job_id", "item_index", name=op.f(f"pk_{table}")),
    )


def upgrade() -> None:
    _slot_keys("ambiguous_items")
    _slot_keys("kept_keys")


def downgrade() -> None:
    op.drop_table("kept_keys")
    op.drop_table("ambiguous_items")
