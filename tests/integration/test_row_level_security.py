"""Direct reads under row-level security, as PostgREST makes them for a signed-in user.

A session as the `authenticated` role with that user's `request.jwt.claims` sees exactly the
user's rows of the frontend's tables, never an account's secret, and can write nothing. Roles
are cluster-wide and shared by parallel runs: they are created idempotently, never dropped.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg2
import psycopg2.errors
import pytest
from sqlalchemy import make_url

from cli.main import main
from core import migrate
from core.database import Database
from core.jobs import JobRequest, submit
from core.migrate import downgrade, upgrade
from core.settings import Settings
from core.users import create_user
from outbox.apply import apply_batch
from tests.conftest import create_database, drop_database, make_settings
from tests.support.inline import process_job

READABLE = ["user_stats", "jobs", "user_credits", "credit_ledger", "user_accounts"]
HIDDEN = ["users", "api_tokens", "job_slices", "outbox", "reconcile_reports", "alembic_version"]
ACCOUNT_COLUMNS = "id, user_id, job_id, item_index, username, metadata, deleted_at"
# Supabase's own definition, which a migration must neither replace nor drop.
SUPABASE_UID = """
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$
"""
ANON_ROLE = """
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN CREATE ROLE anon NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$
"""


@dataclass(frozen=True)
class Users:
    alice: uuid.UUID
    bob: uuid.UUID


def fresh_database(server_database_url: str, prefix: str) -> tuple[str, str]:
    name = f"tally_{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    return name, create_database(server_database_url, name)


@pytest.fixture
def rls_url(server_database_url: str) -> Iterator[str]:
    name, url = fresh_database(server_database_url, "rls")
    upgrade(url, rls=True)
    try:
        yield url
    finally:
        drop_database(server_database_url, name)


def seed(url: str, redis_url: str) -> Users:
    """Two users, each with a finished job, vault rows, ledger entries and a stats card."""
    settings: Settings = make_settings(url, redis_url)
    db = Database.from_settings(settings, pool_size=2, application_name="tally-tests")
    try:
        ids = []
        for name in ("alice", "bob"):
            user = create_user(db.sessions, name, credits=20)
            job = submit(db.sessions, settings, JobRequest(user.user_id, 3, "sandbox")).job
            process_job(db, settings, job.id)
            ids.append(user.user_id)
        apply_batch(db.sessions)
    finally:
        db.dispose()
    return Users(*ids)


class Frontend:
    """One PostgREST-style session: role `authenticated`, the user's claims, per transaction."""

    def __init__(self, url: str, user_id: uuid.UUID | None) -> None:
        self.connection = psycopg2.connect(url)
        self.user_id = user_id

    def run(self, statement: str) -> list[tuple[object, ...]]:
        """Run one statement as the user in a transaction of its own, rolled back after."""
        claims = {"sub": str(self.user_id), "role": "authenticated"} if self.user_id else {}
        try:
            with self.connection.cursor() as cursor:
                cursor.execute("SET LOCAL ROLE authenticated")
                cursor.execute(
                    "SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(claims),)
                )
                cursor.execute(statement)
                return list(cursor.fetchall()) if cursor.description else []
        finally:
            self.connection.rollback()

    def refused(self, statement: str) -> bool:
        try:
            self.run(statement)
        except psycopg2.errors.InsufficientPrivilege:
            return True
        return False

    def close(self) -> None:
        self.connection.close()


def owners(frontend: Frontend, table: str) -> list[uuid.UUID]:
    return [uuid.UUID(str(r[0])) for r in frontend.run(f"SELECT user_id FROM {table}")]


def test_a_user_reads_exactly_their_own_rows_never_a_secret_and_writes_nothing(
    rls_url: str, redis_url: str
) -> None:
    users = seed(rls_url, redis_url)
    alice = Frontend(rls_url, users.alice)
    try:
        for table in READABLE:
            assert set(owners(alice, table)) == {users.alice}, table  # own rows visible, bob's not
        stats = alice.run(
            "SELECT requested, successful, failures, business_centers FROM user_stats"
        )
        assert stats == [(3, 3, 0, 3)]
        assert len(alice.run(f"SELECT {ACCOUNT_COLUMNS} FROM user_accounts")) == 3
        assert alice.refused("SELECT secret_encrypted FROM user_accounts")
        assert alice.refused("SELECT * FROM user_accounts")
        for table in HIDDEN:
            assert alice.refused(f"SELECT count(*) FROM {table}"), table
        writes = [
            "UPDATE user_credits SET balance = balance + 1000",
            "UPDATE user_accounts SET username = 'x'",
            "INSERT INTO credit_ledger (user_id, kind, amount) "
            f"VALUES ('{users.alice}', 'grant', 9)",
        ]
        for table in READABLE:
            writes += [
                f"INSERT INTO {table} DEFAULT VALUES",
                f"UPDATE {table} SET user_id = user_id",
                f"DELETE FROM {table}",
                f"TRUNCATE {table} CASCADE",
            ]
        for statement in writes:
            assert alice.refused(statement), statement
    finally:
        alice.close()
    anonymous = Frontend(rls_url, None)
    try:
        for table in READABLE[:4]:
            assert owners(anonymous, table) == [], table
    finally:
        anonymous.close()


def test_row_level_security_leaves_the_owner_alone_and_goes_away_on_downgrade(
    rls_url: str,
) -> None:
    query = (
        "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
        "WHERE relname = ANY(%s) AND relkind = 'r'"
    )
    connection = psycopg2.connect(rls_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(query, (READABLE,))
            assert sorted(cursor.fetchall()) == sorted((t, True, False) for t in READABLE)
        connection.rollback()
        downgrade(rls_url, "0003")
        with connection.cursor() as cursor:
            cursor.execute(query, (READABLE,))
            assert {row[1] for row in cursor.fetchall()} == {False}
            cursor.execute("SELECT count(*) FROM pg_policies WHERE schemaname = 'public'")
            assert cursor.fetchone() == (0,)
            cursor.execute("SELECT to_regprocedure('auth.uid()') IS NULL")
            assert cursor.fetchone() == (True,)
    finally:
        connection.close()


def test_on_a_supabase_like_server_its_uid_stays_and_its_default_grants_are_taken_back(
    server_database_url: str, redis_url: str
) -> None:
    name, url = fresh_database(server_database_url, "supabase")
    try:
        connection = psycopg2.connect(url)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(ANON_ROLE)
            cursor.execute(
                "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
                "'authenticated') THEN CREATE ROLE authenticated NOLOGIN; END IF; "
                "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
            )
            cursor.execute("CREATE SCHEMA auth")
            cursor.execute(SUPABASE_UID)
            # Supabase grants its API roles everything on new tables of `public`.
            cursor.execute(
                "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, "
                "authenticated"
            )
        upgrade(url, rls=False)
        users = seed(url, redis_url)
        alice = Frontend(url, users.alice)
        try:  # even without row-level security, Supabase's default grants are taken back
            assert alice.refused("SELECT token_hash FROM api_tokens")
            assert alice.refused("SELECT user_id FROM jobs")
        finally:
            alice.close()
        migrate.row_level_security(url, enabled=True)
        alice = Frontend(url, users.alice)
        try:
            assert {*owners(alice, "jobs")} == {users.alice}
            assert alice.refused("SELECT secret_encrypted FROM user_accounts")
            assert alice.refused("SELECT token_hash FROM api_tokens")
            assert alice.refused("UPDATE user_credits SET balance = 1000000")
        finally:
            alice.close()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
                "WHERE grantee IN ('anon', 'authenticated') AND table_schema = 'public'"
            )
            expected = {(t, "SELECT") for t in READABLE if t != "user_accounts"}
            assert set(cursor.fetchall()) == expected
        connection.close()
        downgrade(url, "0003")
        connection = psycopg2.connect(url)
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regprocedure('auth.uid()') IS NOT NULL")
            assert cursor.fetchone() == (True,)  # Supabase's function is not ours to drop
        connection.close()
    finally:
        drop_database(server_database_url, name)


def test_the_release_command_reads_tally_rls_from_the_environment(
    server_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, url = fresh_database(server_database_url, "rls_env")
    try:
        monkeypatch.setenv("TALLY_RLS", "maybe")
        with pytest.raises(SystemExit, match="TALLY_RLS"):
            upgrade(url)
        monkeypatch.setenv("TALLY_RLS", "true")
        upgrade(url)  # as `alembic upgrade head` runs it: no config attribute
        connection = psycopg2.connect(url)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT tablename FROM pg_policies WHERE schemaname = 'public'")
                assert sorted(r[0] for r in cursor.fetchall()) == sorted(READABLE)
        finally:
            connection.close()
    finally:
        drop_database(server_database_url, name)


def test_tally_rls_turns_it_on_for_a_database_migrated_without_it_and_off_again(
    server_database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, url = fresh_database(server_database_url, "rls_cli")
    try:
        upgrade(url, rls=False)
        users = seed(url, redis_url)
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("REDIS_URL", redis_url)
        alice = Frontend(url, users.alice)
        try:
            assert alice.refused("SELECT user_id FROM jobs")  # nothing is open by default
            assert main(["rls", "on"]) == 0
            assert set(owners(alice, "jobs")) == {users.alice}
            assert main(["rls", "off"]) == 0
            assert alice.refused("SELECT user_id FROM jobs")
        finally:
            alice.close()
    finally:
        drop_database(server_database_url, name)


OWNER_ROLE = """
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tally_rls_owner') THEN
    CREATE ROLE tally_rls_owner LOGIN NOSUPERUSER;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$
"""


def test_tallys_own_processes_as_a_non_superuser_owner_see_and_write_everything(
    server_database_url: str, redis_url: str
) -> None:
    """Superusers bypass row-level security anyway: the owner here is an ordinary role."""
    name = f"tally_rls_owner_{os.getpid()}_{secrets.token_hex(3)}"
    admin = psycopg2.connect(server_database_url)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(OWNER_ROLE)
        cursor.execute(f'CREATE DATABASE "{name}" OWNER tally_rls_owner')
    admin.close()
    url = str(make_url(server_database_url).set(database=name, username="tally_rls_owner"))
    try:
        upgrade(url, rls=True)  # the role `authenticated` exists on this server already
        users = seed(url, redis_url)
        connection = psycopg2.connect(url)
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT current_user, usesuper FROM pg_user WHERE usename = current_user"
                )
                assert cursor.fetchone() == ("tally_rls_owner", False)
                for table in READABLE:
                    cursor.execute(f"SELECT count(DISTINCT user_id) FROM {table}")
                    assert cursor.fetchone() == (2,), table
                cursor.execute(
                    "SELECT count(*) FROM user_accounts WHERE secret_encrypted IS NOT NULL"
                )
                assert cursor.fetchone() == (6,)
                cursor.execute(
                    "SELECT requested FROM user_stats WHERE user_id = %s", (str(users.bob),)
                )
                assert cursor.fetchone() == (3,)
        finally:
            connection.close()
    finally:
        drop_database(server_database_url, name)
