"""The apply wake-up: a notification runs the apply job now, and never breaks the listener."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from reconcile.wakeup import ApplyWakeup


def test_a_notification_moves_the_apply_job_to_now_and_asks_for_another_round() -> None:
    scheduler = BackgroundScheduler(timezone="UTC")
    later = datetime.now(UTC) + timedelta(hours=1)
    scheduler.add_job(lambda: None, "interval", hours=2, id="apply", next_run_time=later)
    scheduler.start(paused=True)
    asked = threading.Event()
    try:
        ApplyWakeup(scheduler, asked, "apply")("tally_outbox", "")
        job = scheduler.get_job("apply")
        assert job is not None and job.next_run_time <= datetime.now(UTC)
        assert asked.is_set()
    finally:
        scheduler.shutdown(wait=False)


def test_a_notification_while_the_scheduler_stops_is_harmless() -> None:
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.start(paused=True)
    asked = threading.Event()
    try:
        ApplyWakeup(scheduler, asked, "apply")()  # no apply job any more: nothing raised
    finally:
        scheduler.shutdown(wait=False)
    ApplyWakeup(scheduler, asked, "apply")()  # stopped: nothing to wake
    assert asked.is_set()
