"""turn queue: vacuumed as often as a queue table needs

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 09:40:00.000000

Every turn moves its user to the back of `turn_queue` (a new row version and a new entry in
`ix_turn_queue_position`), so the table turns over once per round of the crowd while staying
as small as the number of users with work. With PostgreSQL's default thresholds (20 % of the
table) its dead entries pile up in front of the users a turn pops; vacuuming it after a fixed
number of changes keeps a pop reading the live rows it takes, as for any queue table.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUEUE_VACUUM = (
    "autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000, "
    "autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 1000"
)


def upgrade() -> None:
    op.execute(f"ALTER TABLE turn_queue SET ({QUEUE_VACUUM})")


def downgrade() -> None:
    op.execute(
        "ALTER TABLE turn_queue RESET (autovacuum_vacuum_scale_factor, "
        "autovacuum_vacuum_threshold, autovacuum_analyze_scale_factor, "
        "autovacuum_analyze_threshold)"
    )
