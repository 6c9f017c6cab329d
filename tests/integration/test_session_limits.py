"""Nothing a stuck process holds outlives the server-side limits every session carries."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core.database import Database
from core.locks import hold_stats_lock
from core.settings import Settings
from harness.waiting import wait_for
from outbox.apply import apply_batch


def test_a_transaction_left_open_with_the_stats_lock_is_ended_and_applies_go_on(
    db: Database, settings: Settings
) -> None:
    stuck = Database.from_settings(settings.with_changes(idle_transaction_timeout=1.0))
    applied = threading.Event()
    try:
        session = stuck.sessions()
        session.begin()
        hold_stats_lock(session)  # exclusive, as the recompute and reports take it
        # ... and then the process freezes: the transaction stays open, idle.

        def apply() -> None:
            apply_batch(db.sessions)  # takes the lock shared: waits for the stuck session
            applied.set()

        threading.Thread(target=apply, daemon=True).start()
        assert not applied.wait(0.3)  # blocked behind the open transaction
        wait_for(applied.is_set, timeout=10)  # until the server ends it
        with pytest.raises(DBAPIError):
            session.execute(text("SELECT 1"))
        session.close()
    finally:
        stuck.dispose()


def test_a_statement_that_runs_too_long_is_cancelled(settings: Settings) -> None:
    limited = Database.from_settings(settings.with_changes(statement_timeout=0.2))
    try:
        with limited.engine.connect() as connection, pytest.raises(DBAPIError, match="timeout"):
            connection.execute(text("SELECT pg_sleep(5)"))
        with limited.reader.connect() as connection, pytest.raises(DBAPIError, match="timeout"):
            connection.execute(text("SELECT pg_sleep(5)"))
    finally:
        limited.dispose()
