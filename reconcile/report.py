"""The reconciliation report: check every counter, optionally repair, store what was found.

The check reads one snapshot and holds no lock (reconcile/invariants.py), so applies go
on while it runs. A repair is a short transaction of its own under the stats lock, made
only while the outbox is where the check saw it (reconcile/repair.py); when it has moved,
the check runs again, a few times at most. The report is stored afterwards, saying which
drifts were repaired.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from core.database import SessionFactory
from outbox.backlog import Backlog, outbox_backlog
from reconcile import repair as repairs
from reconcile.invariants import Drift, count_orphans, count_users, find_drift
from reconcile.report_store import DriftRecord, Report, RunFigures, save_report
from reconcile.snapshot import OutboxPosition, begin_snapshot, outbox_position
from reconcile.sweep import Swept

logger = logging.getLogger(__name__)

# Past this many drifts a run logs a summary line instead of one warning per drift.
MAX_DRIFT_WARNINGS = 50
# A repair the outbox keeps moving under is checked again this many times at most.
MAX_CHECKS = 3


@dataclass(frozen=True)
class Check:
    """What one snapshot showed: the drift, and the figures stored beside it."""

    drifts: list[Drift]
    position: OutboxPosition
    backlog: Backlog
    users: int
    orphans: int


def check(sessions: SessionFactory) -> Check:
    """Check every counter in one read-only snapshot, holding no lock."""
    with sessions() as session, session.begin():
        begin_snapshot(session)
        return Check(
            drifts=sorted(find_drift(session), key=_order),
            position=outbox_position(session),
            backlog=outbox_backlog(session),
            users=count_users(session),
            orphans=count_orphans(session),
        )


def check_and_repair(sessions: SessionFactory, repair: bool) -> tuple[Check, list[bool]]:
    """Check, and repair if asked (checking again while the outbox moves under the repair)."""
    for _ in range(MAX_CHECKS):
        found = check(sessions)
        if not repair or not any(repairs.is_repairable(d) for d in found.drifts):
            break
        fixed = repairs.repair(sessions, found.position, found.drifts)
        if fixed is not None:
            return found, fixed
    else:
        logger.warning(
            "drift left unrepaired: the outbox moved after each of %d checks", MAX_CHECKS
        )
    return found, [False] * len(found.drifts)


def run_report(
    sessions: SessionFactory, *, repair: bool, origin: str, swept: Swept | None = None
) -> Report:
    """Check, repair if asked, and store one report; return it."""
    started = time.monotonic()
    found, fixed = check_and_repair(sessions, repair)
    figures = RunFigures(
        duration_seconds=time.monotonic() - started,
        origin=origin,
        users_checked=found.users,
        outbox_backlog=found.backlog.rows,
        oldest_pending_seconds=found.backlog.oldest_seconds,
        jobs_swept=None if swept is None else swept.jobs,
        slices_resent=None if swept is None else swept.turns,
        repair=repair,
        orphans=found.orphans,
    )
    records = [_record(d, done) for d, done in zip(found.drifts, fixed, strict=True)]
    with sessions() as session, session.begin():
        report = save_report(session, figures, records)
    log_report(report)
    return report


def log_report(report: Report) -> None:
    """Log a summary line, and a warning with the figures for each drift."""
    if report.drift_count == 0:
        logger.info(
            "reconciliation report %d: no drift over %d users in %.2fs",
            report.id,
            report.users_checked,
            report.duration_seconds,
        )
        return
    for drift in report.drifts[:MAX_DRIFT_WARNINGS]:
        logger.warning(
            "reconciliation drift (report %d): %s %s %s expected %d actual %d%s",
            report.id,
            drift.subject,
            drift.subject_id,
            drift.field,
            drift.expected,
            drift.actual,
            " (repaired)" if drift.repaired else "",
        )
    logger.warning(
        "reconciliation report %d: %d drifts, %d repaired, over %d users",
        report.id,
        report.drift_count,
        report.repaired_count,
        report.users_checked,
    )


def _order(drift: Drift) -> tuple[str, str, str]:
    return drift.subject, drift.subject_id, drift.field


def _record(drift: Drift, repaired: bool) -> DriftRecord:
    return DriftRecord(
        drift.subject, drift.subject_id, drift.field, drift.expected, drift.actual, repaired
    )
