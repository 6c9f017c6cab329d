"""Fault 2: Redis loses every message, by FLUSHALL or by a restart without persistence."""

from __future__ import annotations

import time

from core.database import Database
from core.users import NewUser
from tests.faults.checks import SLICE_MESSAGES, assert_exact, settle, slice_states, submit
from tests.support.stack import RedisServer, Stack
from tests.support.waiting import wait_for

JOBS = 20
ITEMS = 100
LATENCY = {"TALLY_SANDBOX_LATENCY_MS": "100"}
SENTINEL = "tally-faults:sentinel"


def start_and_submit(stack: Stack, db: Database, user: NewUser, redis: RedisServer) -> None:
    """Run the processes, submit the jobs, and wait until some slices run and many wait."""
    stack.reconcile()
    url = stack.web()
    stack.worker(threads=4, **LATENCY)
    submit(url, user.token, [ITEMS] * JOBS)
    wait_for(lambda: slice_states(db).get("done", 0) >= 4, timeout=30)
    with redis.client() as client:
        assert client.hlen(SLICE_MESSAGES) > 0, "no message was waiting in Redis"


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
    start_and_submit(stack, db, user, redis_server)
    with redis_server.client() as client:
        client.set(SENTINEL, 1)
    states = slice_states(db)
    redis_server.crash()
    time.sleep(1.0)
    redis_server.start()
    with redis_server.client() as client:
        assert not client.exists(SENTINEL), "Redis kept its data over the restart"
    print(f"\n[redis restart] slices at the crash: {states}")
    settle(db, time.monotonic(), "Redis killed and restarted empty")
    assert_exact(db, all_successful=True)
