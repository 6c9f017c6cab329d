"""Fault 1: the worker's whole process group is SIGKILLed again and again mid-job."""

from __future__ import annotations

import random
import time

from core.database import Database
from core.users import NewUser
from harness.stack import WORKER_READY, Stack
from tests.faults.checks import assert_exact, reclaimed_slices, settle, slice_states, submit
from tests.support.state import unfinished_jobs

JOBS = 20
ITEMS = 200
KILLS = 5


def test_worker_killed_repeatedly_loses_nothing_and_counts_nothing_twice(
    broker_stack: Stack, db: Database, user: NewUser
) -> None:
    stack = broker_stack  # on Redis, then on RabbitMQ
    stack.reconcile()
    url = stack.web()
    worker = stack.worker(threads=4, TALLY_SANDBOX_LATENCY_MS="100")
    submit(url, user.token, [ITEMS] * JOBS)
    seed = random.randrange(2**32)
    print(f"\n[worker kill] random seed {seed}")
    moments = random.Random(seed)
    for kill in range(KILLS):
        # Each kill lands a random moment after the worker is ready, never during its start.
        worker.wait_for_log(WORKER_READY, timeout=60)
        time.sleep(moments.uniform(0.5, 1.5))
        states = slice_states(db)
        assert unfinished_jobs(db) > 0, f"jobs finished before kill {kill + 1}: {states}"
        worker.kill()
        print(f"[worker kill] kill {kill + 1}: slices {states}")
        worker = stack.worker(threads=4, TALLY_SANDBOX_LATENCY_MS="100")
    settle(db, time.monotonic(), "worker SIGKILLed 5 times")
    assert reclaimed_slices(db) > 0
    assert_exact(db, all_successful=True)
