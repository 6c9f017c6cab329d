"""Through PgBouncer in transaction mode: the limits hold per transaction, nothing leaks."""

from __future__ import annotations

import threading

import psycopg2
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError

from core.database import Database
from core.locks import hold_stats_lock
from core.settings import Settings
from harness.waiting import wait_for
from outbox.apply import apply_batch


def raw(url: str) -> psycopg2.extensions.connection:
    """A plain libpq connection (no tally settings) to `url`."""
    connection = psycopg2.connect(str(make_url(url).set(drivername="postgresql")))
    connection.autocommit = True
    return connection


def test_a_pooled_process_connects_where_startup_options_are_refused(
    pooled_settings: Settings,
) -> None:
    with pytest.raises(psycopg2.OperationalError, match="unsupported startup parameter"):
        psycopg2.connect(
            str(make_url(pooled_settings.database_url).set(drivername="postgresql")),
            options="-c statement_timeout=1000",
        )
    database = Database.from_settings(pooled_settings)
    try:
        with database.engine.begin() as connection:
            shown = connection.execute(text("SHOW statement_timeout")).scalar_one()
        assert shown == "1min"
        with database.reader.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        database.dispose()


def test_a_statement_that_runs_too_long_is_cancelled_through_the_pooler(
    pooled_settings: Settings,
) -> None:
    limited = Database.from_settings(pooled_settings.with_changes(statement_timeout=0.2))
    try:
        with limited.engine.connect() as connection, pytest.raises(DBAPIError, match="timeout"):
            connection.execute(text("SELECT pg_sleep(5)"))
    finally:
        limited.dispose()


def test_the_limits_of_a_transaction_never_reach_the_next_client_of_its_connection(
    pooled_settings: Settings, pgbouncer: object
) -> None:
    limited = Database.from_settings(pooled_settings.with_changes(statement_timeout=0.5))
    other = raw(pooled_settings.database_url)
    try:
        for _ in range(20):  # the pool's few server connections are shared by both clients
            with limited.engine.begin() as connection:
                assert connection.execute(text("SHOW statement_timeout")).scalar_one() == "500ms"
            with other.cursor() as cursor:
                cursor.execute("SHOW statement_timeout")
                assert cursor.fetchone() == ("0",)
    finally:
        other.close()
        limited.dispose()


def test_a_pooled_transaction_left_open_with_the_stats_lock_is_ended(
    pooled_settings: Settings, db: Database
) -> None:
    stuck = Database.from_settings(pooled_settings.with_changes(idle_transaction_timeout=1.0))
    applied = threading.Event()
    try:
        session = stuck.sessions()
        session.begin()
        hold_stats_lock(session)  # then the process freezes, its transaction open and idle

        def apply() -> None:
            apply_batch(db.sessions)
            applied.set()

        threading.Thread(target=apply, daemon=True).start()
        assert not applied.wait(0.3)
        wait_for(applied.is_set, timeout=10)  # the server ended the stuck transaction
        with pytest.raises(DBAPIError):
            session.execute(text("SELECT 1"))
        session.close()
    finally:
        stuck.dispose()
