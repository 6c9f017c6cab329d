"""Storing reconciliation reports and reading them back."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from core.database import SessionFactory
from core.pages import fetch_page
from core.schema import ReconcileDrift, ReconcileReport


@dataclass(frozen=True)
class DriftRecord:
    """One stored drift: which figure, what it should be, what it was, whether fixed."""

    subject: str
    subject_id: str
    field: str
    expected: int
    actual: int
    repaired: bool


@dataclass(frozen=True)
class RunFigures:
    """What one run measured, besides its drift."""

    duration_seconds: float
    origin: str
    users_checked: int
    outbox_backlog: int
    oldest_pending_seconds: float
    jobs_swept: int | None
    slices_resent: int | None
    repair: bool
    orphans: int = 0  # accounts providers may hold that no vault does, over every job
    outbox_quarantined: int = 0  # outbox rows the apply set aside


@dataclass(frozen=True)
class Report:
    """One reconciliation run; `drifts` may be a window of the `drift_count` rows."""

    id: int
    started_at: datetime
    duration_seconds: float
    origin: str
    users_checked: int
    outbox_backlog: int
    oldest_pending_seconds: float
    jobs_swept: int | None
    slices_resent: int | None
    drift_count: int
    repair: bool
    repaired_count: int
    drifts: list[DriftRecord] = field(default_factory=list)
    orphans: int = 0
    outbox_quarantined: int = 0

    @property
    def unrepaired(self) -> int:
        """Drifts that are still there after this run."""
        return self.drift_count - self.repaired_count

    def as_dict(self, *, with_drifts: bool = True) -> dict[str, Any]:
        """Plain JSON-ready data (the API and `tally report --json` shape)."""
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["duration_seconds"] = round(self.duration_seconds, 3)
        data["oldest_pending_seconds"] = round(self.oldest_pending_seconds, 3)
        data["unrepaired"] = self.unrepaired
        if not with_drifts:
            del data["drifts"]
        return data


def save_report(session: Session, figures: RunFigures, drifts: list[DriftRecord]) -> Report:
    """Insert a report row and its drift rows inside the caller's transaction."""
    row = ReconcileReport(
        **asdict(figures),
        drift_count=len(drifts),
        repaired_count=sum(1 for d in drifts if d.repaired),
    )
    session.add(row)
    session.flush()
    if drifts:
        session.execute(
            insert(ReconcileDrift), [{"report_id": row.id, **asdict(d)} for d in drifts]
        )
    return _view(row, drifts)


def get_report(
    sessions: SessionFactory, report_id: int | None, drift_limit: int = 100, drift_offset: int = 0
) -> Report | None:
    """Return one report (the latest when report_id is None) with a window of its drifts."""
    with sessions() as session, session.begin():
        query = select(ReconcileReport)
        if report_id is None:
            query = query.order_by(ReconcileReport.id.desc()).limit(1)
        else:
            query = query.where(ReconcileReport.id == report_id)
        row = session.scalars(query).first()
        if row is None:
            return None
        drifts = session.scalars(
            select(ReconcileDrift)
            .where(ReconcileDrift.report_id == row.id)
            .order_by(ReconcileDrift.id)
            .limit(drift_limit)
            .offset(drift_offset)
        ).all()
        return _view(row, [_drift(d) for d in drifts])


def list_reports(sessions: SessionFactory, limit: int, offset: int) -> tuple[list[Report], int]:
    """Return one page of reports, newest first (without drift rows), and their total."""
    with sessions() as session, session.begin():
        order = [ReconcileReport.id.desc()]
        found, total = fetch_page(session, ReconcileReport, None, order, limit, offset)
        return [_view(r, []) for r in found], total


def _drift(row: ReconcileDrift) -> DriftRecord:
    return DriftRecord(
        row.subject, row.subject_id, row.field, row.expected, row.actual, row.repaired
    )


def _view(row: ReconcileReport, drifts: list[DriftRecord]) -> Report:
    return Report(
        id=row.id,
        started_at=row.started_at,
        duration_seconds=row.duration_seconds,
        origin=row.origin,
        users_checked=row.users_checked,
        outbox_backlog=row.outbox_backlog,
        oldest_pending_seconds=row.oldest_pending_seconds,
        jobs_swept=row.jobs_swept,
        slices_resent=row.slices_resent,
        drift_count=row.drift_count,
        repair=row.repair,
        repaired_count=row.repaired_count,
        drifts=drifts,
        orphans=row.orphans,
        outbox_quarantined=row.outbox_quarantined,
    )


def latest_report_age(sessions: SessionFactory) -> float | None:
    """Seconds since the latest report started, or None when there is none."""
    with sessions() as session, session.begin():
        age = session.scalar(
            select(func.extract("epoch", func.now() - func.max(ReconcileReport.started_at)))
        )
    return None if age is None else float(age)
