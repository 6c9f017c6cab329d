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

revision: str = "0007"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS_BEFORE = "kind IN ('grant', 'hold', 'release', 'adjust')"
KINDS_AFTER = "kind IN ('grant', 'hold', 'release', 'adjust', 'refund')"

# The frontend's tables: each row belongs to the user in its user_id column.
READABLE = ("user_stats", "jobs", "user_credits", "credit_ledger", "user_accounts")
# Every table of this revision's schema: none is open to the frontend's roles otherwise.
TALLY_TABLES = (
    *READABLE,
    "users",
    "api_tokens",
    "job_slices",
    "outbox",
    "reconcile_reports",
    "reconcile_drifts",
    "reconcile_heartbeats",
    "reconcile_leader",
)
# user_accounts without secret_encrypted.
ACCOUNT_COLUMNS = (
    "id, user_id, job_id, item_index, provider, external_id, username, metadata, "
    "created_at, deleted_at"
)
FRONTEND_ROLES = ("authenticated", "anon")
POLICY = "tally_read_own_rows"
CREATED_BY_TALLY = "created by tally: reads sub from request.jwt.claims, as PostgREST sets it"

# Roles are cluster-wide: two databases migrated at once may both try to create it.
CREATE_ROLE = """
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
    CREATE ROLE authenticated NOLOGIN NOINHERIT;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$
"""
CREATE_UID = f"""
DO $$ BEGIN
  IF to_regprocedure('auth.uid()') IS NULL THEN
    CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS
      'SELECT nullif(current_setting(''request.jwt.claims'', true)::json ->> ''sub'', '''')::uuid';
    COMMENT ON FUNCTION auth.uid() IS '{CREATED_BY_TALLY}';
  END IF;
END $$
"""
DROP_UID = f"""
DO $$ BEGIN
  IF obj_description(to_regprocedure('auth.uid()'), 'pg_proc') = '{CREATED_BY_TALLY}' THEN
    DROP FUNCTION auth.uid();
  END IF;
END $$
"""


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
        enable_row_level_security()


def downgrade() -> None:
    disable_row_level_security()
    op.execute("UPDATE credit_ledger SET kind = 'adjust' WHERE kind = 'refund'")
    op.drop_constraint(op.f("ck_credit_ledger_kind_known"), "credit_ledger", type_="check")
    op.create_check_constraint(op.f("ck_credit_ledger_kind_known"), "credit_ledger", KINDS_BEFORE)
    op.drop_constraint(op.f("uq_credit_ledger_reference"), "credit_ledger", type_="unique")
    op.drop_column("credit_ledger", "reference")


def enable_row_level_security() -> None:
    op.execute(CREATE_ROLE)
    op.execute("CREATE SCHEMA IF NOT EXISTS auth")
    op.execute(CREATE_UID)
    op.execute("GRANT USAGE ON SCHEMA auth TO authenticated")
    op.execute("GRANT USAGE ON SCHEMA public TO authenticated")
    _revoke_frontend_roles()
    for table in TALLY_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    for table in READABLE:
        op.execute(
            f"CREATE POLICY {POLICY} ON {table} FOR SELECT TO authenticated "
            "USING (user_id = (SELECT auth.uid()))"
        )
    op.execute("GRANT SELECT ON user_stats, jobs, user_credits, credit_ledger TO authenticated")
    op.execute(f"GRANT SELECT ({ACCOUNT_COLUMNS}) ON user_accounts TO authenticated")


def disable_row_level_security() -> None:
    for table in READABLE:
        op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
    for table in TALLY_TABLES:
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    _revoke_frontend_roles()
    op.execute(DROP_UID)


def _revoke_frontend_roles() -> None:
    """Take every privilege on tally's tables from the frontend's roles (Supabase grants them
    ALL on new tables of `public` by default), columns included."""
    tables = ", ".join((*TALLY_TABLES, "alembic_version"))
    for role in FRONTEND_ROLES:
        op.execute(
            f"DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN "
            f"REVOKE ALL ON {tables} FROM {role}; "
            f"REVOKE ALL ({ACCOUNT_COLUMNS}, secret_encrypted) ON user_accounts FROM {role}; "
            "END IF; END $$"
        )
