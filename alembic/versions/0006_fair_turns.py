"""turns owed to users whose limit made a turn run nothing

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-01 11:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_turns_owed",
        sa.Column("user_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("owed", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint("owed >= 0", name=op.f("ck_user_turns_owed_owed_not_negative")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_turns_owed_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_turns_owed")),
    )


def downgrade() -> None:
    op.drop_table("user_turns_owed")
