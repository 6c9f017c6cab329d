"""Fault 6: turn messages delivered twice while jobs run, and again after they completed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

import dramatiq
import pytest
from sqlalchemy import text

from core.database import Database
from core.settings import Settings
from core.turn_messages import send_turns
from core.users import NewUser
from harness.stack import Stack
from harness.waiting import wait_for
from tests.faults.checks import assert_exact, settle, submit
from tests.support.brokers import BrokerServer
from tests.support.brokers import sender as make_sender

JOBS = 10
ITEMS = 120
SLICES_PER_JOB = 3  # TALLY_SLICE_SIZE is 50
REPEATS = 3
WORKER_ENV = {"TALLY_SANDBOX_LATENCY_MS": "20", "TALLY_SANDBOX_FAILURE_RATE": "0.2"}
# The leader checks every counter about once a second, so a report follows the late messages.
REPORT_EVERY_SECOND = {"TALLY_REPORT_INTERVAL": "1"}

# Every row a slice message may write; a late message must leave all of them as they are.
FINGERPRINT = {
    "jobs": "SELECT * FROM jobs ORDER BY id",
    "job_slices": "SELECT * FROM job_slices ORDER BY job_id, slice_index",
    "credit_ledger": "SELECT * FROM credit_ledger ORDER BY id",
    "user_credits": "SELECT * FROM user_credits ORDER BY user_id",
    "user_accounts": "SELECT * FROM user_accounts ORDER BY job_id, item_index",
    "outbox": "SELECT * FROM outbox ORDER BY id",
    "user_stats": "SELECT * FROM user_stats ORDER BY user_id",
}


@pytest.fixture
def sender(any_broker: BrokerServer, settings: Settings) -> Iterator[dramatiq.Broker]:
    """A broker on the test's broker, to send slice messages as the web and sweep do."""
    broker = make_sender(any_broker, settings.database_url)
    try:
        yield broker
    finally:
        broker.close()


def send(broker: dramatiq.Broker, turns: int) -> int:
    """Enqueue `turns` take_turn messages, as redeliveries or the sweep would; how many."""
    return send_turns(broker, turns)


def drained(broker: BrokerServer) -> bool:
    """Whether every message was processed and acknowledged (none waits or is in flight)."""
    return broker.waiting() == 0


def database_now(db: Database) -> datetime:
    """The database's clock, which stamps the daemon's reports."""
    with db.engine.connect() as connection:
        moment: datetime = connection.execute(text("SELECT now()")).scalar_one()
        return moment


def report_since(db: Database, moment: datetime) -> dict[str, object] | None:
    """The first daemon report whose check began after `moment`, if one ran."""
    query = text(
        "SELECT id, started_at, drift_count FROM reconcile_reports "
        "WHERE origin = 'daemon' AND started_at > :moment ORDER BY id LIMIT 1"
    )
    with db.engine.connect() as connection:
        found = connection.execute(query, {"moment": moment}).mappings().first()
        return None if found is None else dict(found)


def fingerprint(db: Database) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table a slice message may write."""
    with db.engine.connect() as connection:
        return {
            table: [tuple(row) for row in connection.execute(text(query))]
            for table, query in FINGERPRINT.items()
        }


def test_duplicate_and_late_messages_change_nothing(
    broker_stack: Stack,
    db: Database,
    user: NewUser,
    any_broker: BrokerServer,
    sender: dramatiq.Broker,
) -> None:
    stack = broker_stack  # on Redis, then on RabbitMQ
    stack.reconcile(env=REPORT_EVERY_SECOND)
    url = stack.web()
    worker = stack.worker(threads=4, env=WORKER_ENV)
    job_ids = submit(url, user.token, [ITEMS] * JOBS)
    every_slice = len(job_ids) * SLICES_PER_JOB
    send(sender, every_slice * 2)
    settle(db, time.monotonic(), "duplicates while running", after="the duplicates")
    wait_for(lambda: drained(any_broker), timeout=30)
    assert_exact(db, all_successful=False)
    before = fingerprint(db)

    worker.stop()
    late = send(sender, every_slice * REPEATS)
    assert any_broker.waiting() == late
    stack.worker(threads=4, env=WORKER_ENV)
    wait_for(lambda: drained(any_broker), timeout=60)
    # The daemon runs on after the late messages: its leader checks every counter again.
    drained_at = database_now(db)
    report = wait_for(lambda: report_since(db, drained_at), timeout=30)
    assert report["drift_count"] == 0, report
    print(f"\n[late messages] {late} messages re-sent after completion, all processed")
    assert fingerprint(db) == before
    assert_exact(db, all_successful=False)
