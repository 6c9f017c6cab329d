"""reconcile leadership as a lease that expires

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reconcile_leader",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("leader_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column(
            "elected_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_reconcile_leader")),
    )


def downgrade() -> None:
    op.drop_table("reconcile_leader")
