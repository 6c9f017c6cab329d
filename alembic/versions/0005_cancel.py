"""cancelled jobs, idempotency fingerprints, a per-user index of unfinished jobs

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-01 11:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = "status IN ('queued', 'running', 'completed', 'failed')"
NEW_STATUSES = "status IN ('queued', 'running', 'completed', 'failed', 'cancelled')"
OLD_COUNTS = "successful >= 0 AND failures >= 0 AND successful + failures <= requested"
NEW_COUNTS = (
    "successful >= 0 AND failures >= 0 AND cancelled >= 0 "
    "AND successful + failures + cancelled <= requested"
)


def upgrade() -> None:
    op.add_column("jobs", sa.Column("cancelled", sa.Integer(), server_default="0", nullable=False))
    op.add_column(
        "jobs", sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("jobs", sa.Column("idempotency_fingerprint", sa.Text(), nullable=True))
    op.add_column(
        "job_slices", sa.Column("cancelled", sa.Integer(), server_default="0", nullable=False)
    )
    _replace_check("status_known", NEW_STATUSES)
    _replace_check("counts_within_requested", NEW_COUNTS)
    op.create_index(
        "ix_jobs_user_id_unfinished",
        "jobs",
        ["user_id"],
        unique=False,
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_user_id_unfinished", table_name="jobs")
    # A cancelled job reads as failed in the older schema, its cancelled items as failures.
    op.execute("UPDATE jobs SET failures = failures + cancelled WHERE cancelled > 0")
    op.execute("UPDATE jobs SET status = 'failed' WHERE status = 'cancelled'")
    op.execute("UPDATE job_slices SET failures = failures + cancelled WHERE cancelled > 0")
    _replace_check("counts_within_requested", OLD_COUNTS)
    _replace_check("status_known", OLD_STATUSES)
    op.drop_column("job_slices", "cancelled")
    op.drop_column("jobs", "idempotency_fingerprint")
    op.drop_column("jobs", "cancel_requested_at")
    op.drop_column("jobs", "cancelled")


def _replace_check(name: str, condition: str) -> None:
    op.drop_constraint(op.f(f"ck_jobs_{name}"), "jobs", type_="check")
    op.create_check_constraint(op.f(f"ck_jobs_{name}"), "jobs", condition)
