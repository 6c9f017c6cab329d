"""Fault 3: PostgreSQL cuts the processes' connections, or restarts, mid-run."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import make_url, text

from core.database import Database
from core.migrate import upgrade
from core.users import NewUser, create_user
from devstack.embedded import EmbeddedPostgres
from harness.stack import Stack
from harness.waiting import wait_for
from tests.faults.checks import assert_exact, settle, slice_states, submit
from tests.faults.conftest import StackFactory

JOBS = 20
ITEMS = 300
CUTS = 30
CUT_EVERY = 0.1
# Every connection tally's processes open names its process (core.database).
PROCESS_CONNECTIONS = ("tally-worker", "tally-reconcile", "tally-web")


def cut_connections(db: Database) -> tuple[int, int]:
    """Terminate every backend of tally's processes on the test database.

    Return how many were cut, and how many of those were inside a transaction.
    """
    database = make_url(str(db.engine.url)).database
    with db.engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS cut, "
                "count(*) FILTER (WHERE state <> 'idle') AS busy FROM pg_stat_activity "
                "WHERE datname = :database AND application_name = ANY(:names) "
                "AND pid <> pg_backend_pid()"
            ),
            {"database": database, "names": list(PROCESS_CONNECTIONS)},
        ).one()
        connection.commit()
    return int(row.cut), int(row.busy)


def start_and_submit(stack: Stack, db: Database, token: str, items: int, latency_ms: int) -> None:
    """Run the processes, submit the jobs and wait until slices are being processed."""
    stack.reconcile()
    url = stack.web()
    stack.worker(threads=4, TALLY_SANDBOX_LATENCY_MS=str(latency_ms))
    submit(url, token, [items] * JOBS)
    wait_for(lambda: slice_states(db).get("done", 0) >= 4, timeout=30)


def test_connections_terminated_mid_run_recover_by_themselves(
    stack: Stack, db: Database, user: NewUser
) -> None:
    start_and_submit(stack, db, user.token, ITEMS, latency_ms=0)
    cut = busy = 0
    for _ in range(CUTS):
        time.sleep(CUT_EVERY)
        cut_now, busy_now = cut_connections(db)
        cut, busy = cut + cut_now, busy + busy_now
    print(f"\n[postgres cut] {CUTS} rounds: {cut} backends cut, {busy} inside a transaction")
    assert busy > 0, "no connection was cut while in use"
    settle(db, time.monotonic(), f"connections terminated {CUTS} times")
    assert_exact(db, all_successful=True)


@dataclass
class PrivatePostgres:
    """A PostgreSQL server of one test's own, which the test may stop and start again."""

    directory: Path
    server: EmbeddedPostgres

    def restart(self, downtime: float) -> None:
        """Fast shutdown (every connection is cut), then start on the same socket."""
        self.server.stop()
        time.sleep(downtime)
        self.server = EmbeddedPostgres.start(self.directory)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL, stopped and removed at the end of the test.

    Its folder is not under pytest's basetemp: the server runs as an unprivileged user, and
    every pytest session that starts on this machine makes /tmp/pytest-of-<user> private.
    """
    directory = Path(tempfile.mkdtemp(prefix="tally-faults-pg-"))
    server = PrivatePostgres(directory, EmbeddedPostgres.start(directory))
    try:
        yield server
    finally:
        server.server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_postgres_restart_mid_run_loses_nothing(
    private_postgres: PrivatePostgres, stacks: StackFactory, fault_env: dict[str, str]
) -> None:
    url = private_postgres.server.ensure_database("tally_faults")
    upgrade(url)
    db = Database.from_settings_url(url)
    try:
        user = create_user(db.sessions, "restart-user", credits=1_000_000)
        stack = stacks({**fault_env, "DATABASE_URL": url})
        start_and_submit(stack, db, user.token, items=150, latency_ms=60)
        states = slice_states(db)
        db.dispose()
        private_postgres.restart(downtime=1.0)
        print(f"\n[postgres restart] slices at the stop: {states}")
        settle(db, time.monotonic(), "PostgreSQL stopped for 1 s and restarted")
        assert_exact(db, all_successful=True)
    finally:
        db.dispose()
