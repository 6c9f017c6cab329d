"""turn queue: users with work, served round-robin, popped in O(log n)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 08:00:00.000000

`turn_queue` holds one row per user who has (or may soon have) a slice to run, ordered by
`position`: a user who has just been served goes to the back (`turn_positions`), a user
who arrives with work goes to the front. A turn pops the first user whose `wake_at` has
passed (`FOR UPDATE SKIP LOCKED`) and claims that user's oldest pending slices through
`ix_job_slices_ready`, so neither step reads the queue behind them. `turns_taken` moves
once per turn: the sweep sees that turns stalled by reading it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("job_slices", sa.Column("user_id", postgresql.UUID(as_uuid=True)))
    op.execute("UPDATE job_slices s SET user_id = j.user_id FROM jobs j WHERE j.id = s.job_id")
    op.alter_column("job_slices", "user_id", nullable=False)
    op.create_index(
        "ix_job_slices_ready",
        "job_slices",
        ["user_id", "enqueued_at", "job_id", "slice_index"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_job_slices_running",
        "job_slices",
        ["user_id"],
        postgresql_where=sa.text("status = 'running'"),
    )
    op.execute("CREATE SEQUENCE turn_positions")
    op.execute("CREATE SEQUENCE turns_taken")
    op.create_table(
        "turn_queue",
        sa.Column("user_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column(
            "wake_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("'-infinity'::timestamptz"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_turn_queue_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_turn_queue")),
    )
    op.create_index("ix_turn_queue_position", "turn_queue", ["position"])
    op.execute(
        "INSERT INTO turn_queue (user_id, position) "
        "SELECT user_id, nextval('turn_positions') FROM job_slices "
        "WHERE status <> 'done' GROUP BY user_id"
    )


def downgrade() -> None:
    op.drop_index("ix_turn_queue_position", table_name="turn_queue")
    op.drop_table("turn_queue")
    op.execute("DROP SEQUENCE turns_taken")
    op.execute("DROP SEQUENCE turn_positions")
    op.drop_index("ix_job_slices_running", table_name="job_slices")
    op.drop_index("ix_job_slices_ready", table_name="job_slices")
    op.drop_column("job_slices", "user_id")
