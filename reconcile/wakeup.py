"""Apply as soon as PostgreSQL announces outbox rows, on the daemon's direct LISTEN connection.

Each transaction that writes an outbox row notifies `tally_outbox` when it commits. The
daemon holds one LISTEN connection (DATABASE_DIRECT_URL: a pooler in transaction mode
cannot keep one) and on each notification, or on reconnecting, runs the apply job now. A
notification that arrives while an apply runs is remembered (`asked`), and that apply goes
round once more, so no row waits for the interval; the interval stays as the safety net
for a notification that is lost.
"""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.base import BaseScheduler

from core.listener import Listener
from core.outbox import OUTBOX_CHANNEL

LISTENER_NAME = "tally-reconcile-listener"


class ApplyWakeup:
    """Runs the scheduler's apply job at once when the outbox is announced."""

    def __init__(self, scheduler: BaseScheduler, asked: threading.Event, job_id: str) -> None:
        self._scheduler = scheduler
        self._asked = asked
        self._job_id = job_id

    def __call__(self, channel: str = OUTBOX_CHANNEL, payload: str = "") -> None:
        """Ask for an apply now (and once more, if one is running)."""
        self._asked.set()
        if not self._scheduler.running:
            return
        with contextlib.suppress(JobLookupError):  # the scheduler is shutting down
            self._scheduler.modify_job(self._job_id, next_run_time=datetime.now(UTC))


def listen(direct_url: str, wakeup: ApplyWakeup) -> Listener:
    """Start the LISTEN thread that wakes the apply; whatever came while it was away too."""
    listener = Listener(direct_url, [OUTBOX_CHANNEL], wakeup, wakeup, LISTENER_NAME)
    listener.start()
    return listener
