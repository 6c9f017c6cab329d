"""Fault 2: Redis loses every message, by FLUSHALL or by a restart without persistence."""

from __future__ import annotations

import time

from core.database import Database
from core.users import NewUser
from devstack.processes import Child
from harness.stack import RedisServer, Stack
from harness.waiting import wait_for
from tests.faults.checks import TURN_MESSAGES, assert_exact, settle, slice_states, submit

JOBS = 20
ITEMS = 100
LATENCY = {"TALLY_SANDBOX_LATENCY_MS": "100"}
SENTINEL = "tally-faults:sentinel"
# Dramatiq's words when a worker's consumer or acknowledgement loses its Redis connection.
CONNECTION_LOST = "due to a connection error"
CONSUMER_LOST = "Consumer encountered a connection error"


def start_and_submit(stack: Stack, db: Database, user: NewUser, redis: RedisServer) -> Child:
    """Start the processes and submit; return the worker once some slices ran and many wait."""
    stack.reconcile()
    url = stack.web()
    worker = stack.worker(threads=4, env=LATENCY)
    submit(url, user.token, [ITEMS] * JOBS)
    wait_for(lambda: slice_states(db).get("done", 0) >= 4, timeout=30)
    with redis.client() as client:
        assert client.hlen(TURN_MESSAGES) > 0, "no message was waiting in Redis"
    return worker


def connections_lost(worker: Child) -> int:
    """How often the worker logged that a consumer or an acknowledgement lost Redis."""
    log = worker.log_text()
    return log.count(CONSUMER_LOST) + log.count(CONNECTION_LOST)


def test_flushall_mid_run_loses_no_job(
    stack: Stack, db: Database, user: NewUser, redis_server: RedisServer
) -> None:
    start_and_submit(stack, db, user, redis_server)
    states = slice_states(db)
    redis_server.flushall()
    print(f"\n[redis flushall] slices at the flush: {states}")
    settle(db, time.monotonic(), "Redis FLUSHALL")
    assert_exact(db, all_successful=True)


def test_redis_restart_without_persistence_loses_no_job(
    stack: Stack, db: Database, user: NewUser, redis_server: RedisServer
) -> None:
    worker = start_and_submit(stack, db, user, redis_server)
    with redis_server.client() as client:
        client.set(SENTINEL, 1)
    states = slice_states(db)
    lost_before, crashed = connections_lost(worker), time.monotonic()
    redis_server.crash()
    # Redis stays down until the worker has felt it, whatever the machine's load.
    wait_for(lambda: connections_lost(worker) > lost_before, timeout=30)
    down = time.monotonic() - crashed
    redis_server.start()
    with redis_server.client() as client:
        assert not client.exists(SENTINEL), "Redis kept its data over the restart"
    print(
        f"\n[redis restart] slices at the crash: {states}; "
        f"Redis was down {down:.1f} s, until the worker noticed"
    )
    settle(db, time.monotonic(), "Redis killed and restarted empty")
    assert_exact(db, all_successful=True)
