"""Fault 4: the reconcile daemon is SIGKILLed mid-apply, and two daemons run at once."""

from __future__ import annotations

import random
import time
from functools import partial

from core.database import Database
from core.users import NewUser
from harness.stack import Stack
from harness.waiting import wait_for
from tests.faults.backlog import seed_backlog
from tests.faults.checks import assert_exact, settle, submit
from tests.support.state import pending_outbox

USERS = 100
JOBS_PER_USER = 200
KILLS = 3
# Small batches make the backlog take many transactions, so a kill lands inside one.
SMALL_BATCHES = {"TALLY_APPLY_BATCH": "50"}


def backlog_down_to(db: Database, target: int) -> bool:
    """Whether at most `target` outbox rows are still pending."""
    return pending_outbox(db) <= target


def test_daemon_killed_mid_apply_applies_each_row_once(stack: Stack, db: Database) -> None:
    backlog = seed_backlog(db, USERS, JOBS_PER_USER)
    seed = random.randrange(2**32)
    depth = random.Random(seed)
    left = [backlog]
    for _ in range(KILLS):
        daemon = stack.reconcile(env=SMALL_BATCHES)
        target = left[-1] - depth.randrange(50, 3000)
        wait_for(partial(backlog_down_to, db, target), timeout=30, interval=0.01)
        daemon.kill()
        left.append(pending_outbox(db))
    print(f"\n[daemon kill] seed {seed}; outbox rows pending at start and after each kill: {left}")
    assert 0 < left[-1] < backlog, "the kills did not land mid-backlog"
    stack.reconcile(env=SMALL_BATCHES)
    settle(db, time.monotonic(), f"daemon SIGKILLed {KILLS} times mid-apply")
    assert_exact(db, all_successful=False)


def test_two_daemons_at_once_count_each_job_once(stack: Stack, db: Database, user: NewUser) -> None:
    backlog = seed_backlog(db, USERS, JOBS_PER_USER)
    first = stack.reconcile(env=SMALL_BATCHES)
    stack.reconcile(env=SMALL_BATCHES)
    url = stack.web()
    stack.worker(threads=4, TALLY_SANDBOX_LATENCY_MS="20", TALLY_SANDBOX_FAILURE_RATE="0.2")
    submit(url, user.token, [100] * 20)
    wait_for(lambda: pending_outbox(db) < backlog // 2, timeout=30, interval=0.01)
    first.kill()
    print(f"\n[two daemons] outbox rows pending when one daemon was killed: {pending_outbox(db)}")
    settle(db, time.monotonic(), "two daemons, one SIGKILLed")
    assert_exact(db, all_successful=False)
