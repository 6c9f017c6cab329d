"""Row-level security for the frontend's direct reads, as the `authenticated` role.

`enable` lets `authenticated` SELECT its own rows (`user_id = auth.uid()`) of the frontend's
tables, never an account's secret, and write nothing; it creates the role and `auth.uid()`
where the server has none (Supabase has both). tally's processes connect as the tables'
owner, which row-level security does not restrict (it is never forced). Both functions are
idempotent and run inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, text

from core.schema import Base

# The frontend's tables: each row belongs to the user in its user_id column.
READABLE = ("user_stats", "jobs", "user_credits", "credit_ledger", "user_accounts")
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


def enable(connection: Connection) -> None:
    """Open the frontend's tables to `authenticated`, its own rows only."""
    run = _runner(connection)
    run(CREATE_ROLE)
    run("CREATE SCHEMA IF NOT EXISTS auth")
    run(CREATE_UID)
    run("GRANT USAGE ON SCHEMA auth TO authenticated")
    run("GRANT USAGE ON SCHEMA public TO authenticated")
    tables = tally_tables(connection)
    _revoke_frontend_roles(run, tables)
    for table in tables:
        run(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        run(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    for table in READABLE:
        run(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
        run(
            f"CREATE POLICY {POLICY} ON {table} FOR SELECT TO authenticated "
            "USING (user_id = (SELECT auth.uid()))"
        )
    run("GRANT SELECT ON user_stats, jobs, user_credits, credit_ledger TO authenticated")
    run(f"GRANT SELECT ({ACCOUNT_COLUMNS}) ON user_accounts TO authenticated")


def disable(connection: Connection) -> None:
    """Close them again: no policies, no row-level security, no grants."""
    run = _runner(connection)
    for table in READABLE:
        run(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
    tables = tally_tables(connection)
    for table in tables:
        run(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    _revoke_frontend_roles(run, tables)
    run(DROP_UID)


def tally_tables(connection: Connection) -> list[str]:
    """tally's tables that exist at this point of the migrations, and alembic_version.

    Only these: the frontend's own tables in `public` keep their grants.
    """
    names = [*Base.metadata.tables, "alembic_version"]
    found = connection.execute(
        text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename = ANY(:n)"),
        {"n": names},
    )
    return sorted(found.scalars())


def close(connection: Connection) -> None:
    """Take from the frontend's roles whatever they were granted on tally's tables."""
    _revoke_frontend_roles(_runner(connection), tally_tables(connection))


def _revoke_frontend_roles(run: Callable[[str], object], tables: list[str]) -> None:
    """Take every privilege on tally's tables from the frontend's roles (Supabase grants them
    ALL on new tables of `public` by default), columns included."""
    listed = ", ".join(tables)
    for role in FRONTEND_ROLES:
        run(
            f"DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN "
            f"REVOKE ALL ON {listed} FROM {role}; "
            f"REVOKE ALL ({ACCOUNT_COLUMNS}, secret_encrypted) ON user_accounts FROM {role}; "
            "END IF; END $$"
        )


def _runner(connection: Connection) -> Callable[[str], object]:
    return lambda statement: connection.execute(text(statement))
