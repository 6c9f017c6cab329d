"""Fault 6: turn messages delivered twice while jobs run, and again after they completed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import text

from core.database import Database
from core.turn_messages import send_turns
from core.users import NewUser
from harness.stack import RedisServer, Stack
from harness.waiting import wait_for
from tests.faults.checks import (
    DELAYED_MESSAGES,
    TURN_MESSAGES,
    assert_exact,
    settle,
    submit,
)

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
def sender(redis_server: RedisServer) -> Iterator[RedisBroker]:
    """A broker on the private Redis, to send slice messages as the web and sweep do."""
    broker = RedisBroker(url=redis_server.url)  # type: ignore[no-untyped-call]
    try:
        yield broker
    finally:
        broker.close()


def send(broker: RedisBroker, turns: int) -> int:
    """Enqueue `turns` take_turn messages, as redeliveries or the sweep would; how many."""
    return send_turns(broker, turns)


def drained(redis: RedisServer) -> bool:
    """Whether every message was processed and acknowledged (none waits or is in flight)."""
    with redis.client() as client:
        return client.hlen(TURN_MESSAGES) == 0 and client.hlen(DELAYED_MESSAGES) == 0


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
    stack: Stack, db: Database, user: NewUser, redis_server: RedisServer, sender: RedisBroker
) -> None:
    stack.reconcile(env=REPORT_EVERY_SECOND)
    url = stack.web()
    worker = stack.worker(threads=4, env=WORKER_ENV)
    job_ids = submit(url, user.token, [ITEMS] * JOBS)
    every_slice = len(job_ids) * SLICES_PER_JOB
    send(sender, every_slice * 2)
    settle(db, time.monotonic(), "duplicates while running", after="the duplicates")
    wait_for(lambda: drained(redis_server), timeout=30)
    assert_exact(db, all_successful=False)
    before = fingerprint(db)

    worker.stop()
    late = send(sender, every_slice * REPEATS)
    with redis_server.client() as client:
        assert client.hlen(TURN_MESSAGES) == late
    stack.worker(threads=4, env=WORKER_ENV)
    wait_for(lambda: drained(redis_server), timeout=60)
    # The daemon runs on after the late messages: its leader checks every counter again.
    drained_at = database_now(db)
    report = wait_for(lambda: report_since(db, drained_at), timeout=30)
    assert report["drift_count"] == 0, report
    print(f"\n[late messages] {late} messages re-sent after completion, all processed")
    assert fingerprint(db) == before
    assert_exact(db, all_successful=False)
