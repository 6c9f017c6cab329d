"""The daemon applies an outbox row when its commit is announced, not at the next interval."""

from __future__ import annotations

import functools
import uuid
from pathlib import Path

import psycopg2
import psycopg2.extensions
from sqlalchemy import text

from core import outbox
from core.database import Database
from core.finish import finish_locked_job
from core.jobs import JobRequest, submit
from core.listener import libpq_dsn
from core.outbox import OUTBOX_CHANNEL
from core.settings import Settings
from core.users import create_user
from core.vocabulary import JobStatus, Topic
from harness.stack import DAEMON_STARTED, Stack
from harness.waiting import wait_for
from reconcile.wakeup import LISTENER_NAME
from tests.support.state import pending_outbox

# The interval is the safety net only: far longer than any wait below.
SLOW_APPLY = {"TALLY_APPLY_INTERVAL": "3600", "PYTHONUNBUFFERED": "1"}


def listening(db: Database) -> bool:
    """Whether a daemon holds its LISTEN connection."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = :name AND query LIKE 'LISTEN%'"
    )
    with db.engine.connect() as connection:
        return bool(connection.execute(query, {"name": LISTENER_NAME}).scalar_one())


def complete(db: Database, user_id: uuid.UUID, requested: int) -> None:
    """Commit one job.completed row, as a finishing slice does."""
    job_id = str(uuid.uuid4())
    payload = {"job_id": job_id, "requested": requested, "successful": requested, "failures": 0}
    with db.sessions() as session, session.begin():
        outbox.add(session, Topic.JOB_COMPLETED, job_id, user_id, payload)


def requested(db: Database, user_id: uuid.UUID) -> int:
    with db.engine.connect() as connection:
        found = connection.execute(
            text("SELECT requested FROM user_stats WHERE user_id = :u"), {"u": user_id}
        ).scalar()
    return int(found or 0)


def test_each_announced_commit_is_applied_long_before_the_interval(
    db: Database, process_env: dict[str, str], tmp_path: Path
) -> None:
    user = create_user(db.sessions, "wakeup", credits=0)
    with Stack({**process_env, **SLOW_APPLY}, tmp_path / "logs") as stack:
        daemon = stack.reconcile()
        daemon.wait_for_log(DAEMON_STARTED, timeout=30)
        wait_for(lambda: listening(db), timeout=30)
        for round_ in range(1, 6):
            complete(db, user.user_id, 10)
            wait_for(functools.partial(counted, db, user.user_id, 10 * round_), timeout=30)
        assert pending_outbox(db) == 0


def test_a_daemon_whose_listener_was_cut_still_applies_without_waiting_for_the_interval(
    db: Database, process_env: dict[str, str], tmp_path: Path
) -> None:
    user = create_user(db.sessions, "wakeup-cut", credits=0)
    with Stack({**process_env, **SLOW_APPLY}, tmp_path / "logs") as stack:
        stack.reconcile().wait_for_log(DAEMON_STARTED, timeout=30)
        wait_for(lambda: listening(db), timeout=30)
        with db.engine.connect() as connection:
            # Write the row with the listener gone: its notification reaches no one.
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = :name"
                ),
                {"name": LISTENER_NAME},
            )
            connection.commit()
        complete(db, user.user_id, 7)
        wait_for(lambda: requested(db, user.user_id) == 7, timeout=30)  # notified, or reconnected


def test_every_way_an_outbox_row_is_written_announces_it(db: Database, settings: Settings) -> None:
    user = create_user(db.sessions, "announced", credits=100)
    job = submit(db.sessions, settings, JobRequest(user.user_id, 3, "sandbox")).job
    listener = psycopg2.connect(libpq_dsn(settings.direct_database_url))
    listener.autocommit = True
    try:
        with listener.cursor() as cursor:
            cursor.execute(f'LISTEN "{OUTBOX_CHANNEL}"')
        with db.sessions() as session, session.begin():  # a job finishing, as a turn does
            assert finish_locked_job(session, job.id, JobStatus.FAILED) is not None
        assert wait_for(lambda: announced(listener), timeout=10)
        complete(db, user.user_id, 1)  # core.outbox.add, as a vault deletion writes
        assert wait_for(lambda: announced(listener), timeout=10)
    finally:
        listener.close()


def announced(listener: psycopg2.extensions.connection) -> bool:
    """Whether a notification on the outbox channel arrived (consumes them)."""
    listener.poll()
    found = any(n.channel == OUTBOX_CHANNEL for n in listener.notifies)
    listener.notifies.clear()
    return found


def counted(db: Database, user_id: uuid.UUID, expected: int) -> bool:
    """Whether the user's stats count `expected` requested items."""
    return requested(db, user_id) == expected
