"""The reconciliation report: check every counter, optionally repair, store what was found.

One transaction holds the exclusive stats lock from the check to the stored report, so a
repair and the report rows that record it commit together or not at all.
"""

from __future__ import annotations

import logging
import time

from core.database import SessionFactory
from outbox.backlog import outbox_backlog
from reconcile import repair as repairs
from reconcile.invariants import Drift, count_orphans, count_users, find_drift
from reconcile.report_store import DriftRecord, Report, RunFigures, save_report
from reconcile.sweep import Swept

logger = logging.getLogger(__name__)

# Past this many drifts a run logs a summary line instead of one warning per drift.
MAX_DRIFT_WARNINGS = 50


def run_report(
    sessions: SessionFactory, *, repair: bool, origin: str, swept: Swept | None = None
) -> Report:
    """Check, repair if asked, and store one report; return it."""
    started = time.monotonic()
    with sessions() as session, session.begin():
        found = sorted(find_drift(session), key=_order)
        fixed = repairs.repair(session, found) if repair else [False] * len(found)
        backlog = outbox_backlog(session)
        figures = RunFigures(
            duration_seconds=time.monotonic() - started,
            origin=origin,
            users_checked=count_users(session),
            outbox_backlog=backlog.rows,
            oldest_pending_seconds=backlog.oldest_seconds,
            jobs_swept=None if swept is None else swept.jobs,
            slices_resent=None if swept is None else swept.turns,
            repair=repair,
            orphans=count_orphans(session),
        )
        records = [_record(d, done) for d, done in zip(found, fixed, strict=True)]
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
