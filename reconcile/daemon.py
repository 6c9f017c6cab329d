"""The reconcile daemon: APScheduler jobs over one database handle."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler

from core.database import Database
from core.settings import Settings
from outbox.apply import apply_pending
from reconcile.recompute import recompute_business_centers
from reconcile.sweep import Enqueue, sweep

logger = logging.getLogger(__name__)


@dataclass
class Daemon:
    """The reconcile process's resources and the work each scheduled job does."""

    settings: Settings
    database: Database
    enqueue: Enqueue

    def apply_outbox(self) -> int:
        """Apply every pending outbox row to user_stats."""
        return apply_pending(self.database.sessions, self.settings.apply_batch)

    def sweep_stale(self) -> int:
        """Re-send messages of slices that were lost or abandoned."""
        sent = sweep(self.database.sessions, self.enqueue, self.settings.intervals.stale_enqueue)
        if sent:
            logger.warning("sweep re-sent %d slice messages", sent)
        return sent

    def recompute(self) -> int:
        """Recompute business_centers from the vault."""
        changed = recompute_business_centers(self.database.sessions)
        if changed:
            logger.info("business_centers recomputed: %d rows changed", changed)
        return changed


def schedule(scheduler: BlockingScheduler, daemon: Daemon) -> None:
    """Register the daemon's jobs; a slow run never piles up (coalesce, one instance)."""
    intervals = daemon.settings.intervals
    jobs: list[tuple[str, Callable[[], int], float]] = [
        ("apply", daemon.apply_outbox, intervals.apply),
        ("sweep", daemon.sweep_stale, intervals.sweep),
        ("recompute", daemon.recompute, intervals.recompute),
    ]
    now = datetime.now(UTC)
    for name, func, seconds in jobs:
        scheduler.add_job(
            func,
            "interval",
            seconds=seconds,
            id=name,
            name=name,
            coalesce=True,
            max_instances=1,
            next_run_time=now,
            misfire_grace_time=None,
        )


def run(settings: Settings, enqueue: Enqueue) -> None:
    """Run the daemon until SIGTERM or SIGINT; finish the current transactions first."""
    database = Database.from_settings(settings, pool_size=4, application_name="tally-reconcile")
    scheduler = BlockingScheduler(executors={"default": ThreadPoolExecutor(4)}, timezone="UTC")
    schedule(scheduler, Daemon(settings, database, enqueue))

    def stop(signum: int, frame: FrameType | None) -> None:
        logger.info("reconcile daemon stopping (signal %d)", signum)
        scheduler.shutdown(wait=True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info("reconcile daemon started")
    try:
        scheduler.start()
    finally:
        database.dispose()
        logger.info("reconcile daemon stopped")
