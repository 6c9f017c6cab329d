"""The reconcile daemon: APScheduler jobs over one database handle.

Every daemon applies the outbox (SKIP LOCKED makes that safe to share) every interval and
whenever a commit announces outbox rows (reconcile/wakeup.py), keeps its
heartbeat row fresh and campaigns for the leader lock. Only the leader runs the
singleton jobs: the sweep, the business_centers recompute and the report.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler

from core.database import Database
from core.settings import Settings
from outbox.apply import apply_batch
from reconcile import heartbeat
from reconcile.leader import Leadership
from reconcile.recompute import recompute_business_centers
from reconcile.report import run_report
from reconcile.report_store import latest_report_age
from reconcile.retention import PAUSE_SECONDS, Policy, prune
from reconcile.sweep import Enqueue, Swept, TurnClock, sweep
from reconcile.wakeup import ApplyWakeup, listen

logger = logging.getLogger(__name__)

# The report job wakes at least this often and runs when the latest report is due.
REPORT_TICK_SECONDS = 60.0


@dataclass
class Daemon:
    """The reconcile process's resources and the work each scheduled job does."""

    settings: Settings
    database: Database
    enqueue: Enqueue
    leadership: Leadership
    identity: heartbeat.DaemonIdentity = field(default_factory=heartbeat.DaemonIdentity)
    stopping: threading.Event = field(default_factory=threading.Event)
    apply_asked: threading.Event = field(default_factory=threading.Event)  # NOTIFY came
    _swept: Swept = field(default_factory=Swept)
    _swept_guard: threading.Lock = field(default_factory=threading.Lock)
    _turn_clock: TurnClock = field(init=False)

    def __post_init__(self) -> None:
        self._turn_clock = TurnClock(self.settings.intervals.stale_enqueue)

    def apply_outbox(self) -> int:
        """Apply pending outbox rows batch by batch until none is left or the daemon stops.

        A notification during a batch (`apply_asked`) means rows it may not have seen: go on.
        """
        total, limit = 0, self.settings.apply_batch
        while not self.stopping.is_set():
            self.apply_asked.clear()
            applied = apply_batch(self.database.sessions, limit)
            total += applied.rows
            if applied.rows < limit and not self.apply_asked.is_set():
                break
        return total

    def campaign(self) -> bool:
        """Keep or take the leader lock; refresh the heartbeat at once when that changes."""
        was = self.leadership.is_leader
        leads = self.leadership.campaign()
        if leads != was:
            logger.info(
                "reconcile daemon %s is %s",
                self.identity.daemon_id,
                "now the leader" if leads else "no longer the leader",
            )
            self.heartbeat()
        return leads

    def heartbeat(self) -> None:
        """Refresh this daemon's heartbeat row."""
        heartbeat.beat(self.database.sessions, self.identity, self.leadership.is_leader)

    def sweep_stale(self) -> int:
        """Leader only: take back abandoned slices and send turns that were lost."""
        if not self.leadership.confirm():
            return 0
        swept = sweep(self.database.sessions, self.enqueue, self._turn_clock)
        with self._swept_guard:
            self._swept += swept
        if swept.slices:
            logger.warning("sweep took back %d slices of %d jobs", swept.slices, swept.jobs)
        if swept.turns:
            logger.warning("sweep sent %d turns", swept.turns)
        return swept.slices + swept.turns

    def recompute(self) -> int:
        """Leader only: recompute business_centers from the vault."""
        if not self.leadership.confirm():
            return 0
        changed = recompute_business_centers(self.database.sessions)
        if changed:
            logger.info("business_centers recomputed: %d rows changed", changed)
        return changed

    def prune(self) -> int:
        """Leader only: delete what is past retention, in small batches; return the rows."""
        if not self.leadership.confirm():
            return 0
        pruned = prune(
            self.database.sessions,
            Policy.from_settings(self.settings),
            lambda: self.stopping.wait(PAUSE_SECONDS),
        )
        if pruned.total:
            logger.info("retention deleted %s", pruned)
        return pruned.total

    def report(self) -> int | None:
        """Leader only: run a reconciliation report when one is due; return its id."""
        if not self.leadership.confirm() or not self.report_due():
            return None
        swept = self._take_swept()
        try:
            done = run_report(
                self.database.sessions,
                repair=self.settings.repair_drift,
                origin="daemon",
                swept=swept,
            )
        except Exception:
            with self._swept_guard:
                self._swept += swept
            raise
        return done.id

    def report_due(self) -> bool:
        """Whether the latest stored report (of any origin) is about an interval old."""
        age = latest_report_age(self.database.sessions)
        interval = self.settings.intervals.report
        return age is None or age >= interval - report_tick(interval) / 2

    def _take_swept(self) -> Swept:
        with self._swept_guard:
            swept, self._swept = self._swept, Swept()
        return swept


def report_tick(interval: float) -> float:
    """How often the report job wakes to see whether a report is due."""
    return min(interval, REPORT_TICK_SECONDS)


def schedule(scheduler: BaseScheduler, daemon: Daemon) -> None:
    """Register the daemon's jobs; a slow run never piles up (coalesce, one instance)."""
    intervals = daemon.settings.intervals
    jobs: list[tuple[str, Callable[[], Any], float]] = [
        ("apply", daemon.apply_outbox, intervals.apply),
        ("heartbeat", daemon.heartbeat, intervals.heartbeat),
        ("leader", daemon.campaign, intervals.leader_retry),
        ("sweep", daemon.sweep_stale, intervals.sweep),
        ("recompute", daemon.recompute, intervals.recompute),
        ("report", daemon.report, report_tick(intervals.report)),
        ("retention", daemon.prune, intervals.retention),
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
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    database = Database.from_settings(
        settings, pool_size=settings.reconcile_pool_size, application_name="tally-reconcile"
    )
    identity = heartbeat.DaemonIdentity()
    leadership = Leadership(database.sessions, identity.daemon_id, settings.intervals.leader_lease)
    daemon = Daemon(settings, database, enqueue, leadership, identity)
    scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(6)}, timezone="UTC")
    schedule(scheduler, daemon)

    def stop(signum: int, frame: FrameType | None) -> None:
        logger.info("reconcile daemon stopping (signal %d)", signum)
        daemon.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info("reconcile daemon started (id %s)", daemon.identity.daemon_id)
    listener = None
    try:
        daemon.campaign()
        scheduler.start()
        wakeup = ApplyWakeup(scheduler, daemon.apply_asked, "apply")
        listener = listen(settings.direct_database_url, wakeup)
        daemon.stopping.wait()
    finally:
        daemon.stopping.set()
        if listener is not None:
            listener.stop()
        if scheduler.running:
            scheduler.shutdown(wait=True)
        close(daemon)


def close(daemon: Daemon) -> None:
    """Give up the leader lock, remove the heartbeat row and close the pool."""
    daemon.leadership.resign()
    try:
        heartbeat.remove(daemon.database.sessions, daemon.identity)
    except Exception:
        logger.warning("could not remove the heartbeat row", exc_info=True)
    daemon.database.dispose()
    logger.info("reconcile daemon stopped (id %s)", daemon.identity.daemon_id)
