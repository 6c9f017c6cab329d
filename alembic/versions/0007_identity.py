"""identity: grant references, refunds, row-level security for direct reads

Revision ID: 0007
Revises: 0003
Create Date: 2026-12-01 11:00:00.000000

With TALLY_RLS on when this migration runs, the `authenticated` role (Supabase's, or one
created here with `auth.uid()` when the server has none) may SELECT its own rows of the
tables the frontend reads, never an account's secret, and write nothing. tally's processes
connect as the tables' owner, which row-level security does not restrict (no FORCE).
"""

import os
from collections.abc import Sequence

import msgspec
import sqlalchemy as sa

from alembic import context, op
from core import rls

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS_BEFORE = "kind IN ('grant', 'hold', 'release', 'adjust')"
KINDS_AFTER = "kind IN ('grant', 'hold', 'release', 'adjust', 'refund')"


def rls_wanted() -> bool:
    """TALLY_RLS, from the caller's Alembic config (tally migrate) or the environment."""
    given = context.config.attributes.get("rls")
    if given is not None:
        return bool(given)
    raw = os.environ.get("TALLY_RLS", "") or "false"
    try:
        return msgspec.convert(raw, bool, strict=False)
    except msgspec.ValidationError:
        raise SystemExit(f"TALLY_RLS must be true or false (got {raw!r})") from None


def upgrade() -> None:
    op.add_column("credit_ledger", sa.Column("reference", sa.Text(), nullable=True))
    op.create_unique_constraint(op.f("uq_credit_ledger_reference"), "credit_ledger", ["reference"])
    op.drop_constraint(op.f("ck_credit_ledger_kind_known"), "credit_ledger", type_="check")
    op.create_check_constraint(op.f("ck_credit_ledger_kind_known"), "credit_ledger", KINDS_AFTER)
    if rls_wanted():
        rls.enable(op.get_bind())
    else:  # Supabase grants its API roles everything on new tables of `public`: not these
        rls.close(op.get_bind())


def downgrade() -> None:
    rls.disable(op.get_bind())
    op.execute("UPDATE credit_ledger SET kind = 'adjust' WHERE kind = 'refund'")
    op.drop_constraint(op.f("ck_credit_ledger_kind_known"), "credit_ledger", type_="check")
    op.create_check_constraint(op.f("ck_credit_ledger_kind_known"), "credit_ledger", KINDS_BEFORE)
    op.drop_constraint(op.f("uq_credit_ledger_reference"), "credit_ledger", type_="unique")
    op.drop_column("credit_ledger", "reference")
