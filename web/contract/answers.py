"""Answers: core's views turned into the contract's bodies, encoded by msgspec."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import msgspec
from starlette.responses import Response

from core.credits import CreditsView
from core.jobs import JobView
from core.stats import StatsView
from core.vault import AccountView
from core.vocabulary import FailureReason, JobStatus, LedgerKind, WaitingReason
from reconcile.report_store import Report
from web.contract import bodies

JSON = "application/json"
_encoder = msgspec.json.Encoder()


def json_response(
    body: object, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """An application/json answer carrying `body` (a contract Struct, or plain data)."""
    return Response(_encoder.encode(body), status_code, headers, media_type=JSON)


def encode(body: object) -> str:
    """The JSON text of a body (for event streams)."""
    return _encoder.encode(body).decode()


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def job_body(job: JobView) -> bodies.Job:
    """The status body existing frontends poll."""
    return bodies.Job(
        id=job.id,
        status=job.status,
        requested=job.requested,
        successful=job.successful,
        failures=job.failures,
        progress=job.progress,
        provider=job.provider,
        created_at=job.created_at.isoformat(),
        started_at=_time(job.started_at),
        finished_at=_time(job.finished_at),
        error=job.error,
        cancelled=job.cancelled,
        cancel_requested_at=_time(job.cancel_requested_at),
        waiting=None if job.terminal or job.waiting is None else WaitingReason(job.waiting),
        retry_at=None if job.terminal else _time(job.retry_at),
        failures_by_reason={FailureReason(k): n for k, n in job.failure_reasons.items()},
        orphans=job.orphans,
        note=_note(job),
    )


# A cancel that found nothing left to stop: the job says so instead of a bare `completed`.
CANCEL_TOO_LATE = "cancel asked after every item had been attempted: nothing was left to cancel"


def _note(job: JobView) -> str | None:
    late = job.status is JobStatus.COMPLETED and job.cancel_requested_at is not None
    return CANCEL_TOO_LATE if late else None


def stats_body(stats: StatsView) -> msgspec.Struct:
    """The stats card: exactly the user_stats counters."""
    return bodies.Stats(user_id=stats.user_id, **stats.counters)


def credits_body(
    view: CreditsView, limit: int, next_url: str | None, next_cursor: str | None
) -> bodies.Credits:
    """The balance and one page of the ledger."""
    entries = [
        bodies.LedgerEntry(
            id=e.id,
            kind=LedgerKind(e.kind),
            amount=e.amount,
            job_id=e.job_id,
            note=e.note,
            created_at=e.created_at.isoformat(),
        )
        for e in view.entries
    ]
    return bodies.Credits(view.balance, entries, view.total, limit, next_url, next_cursor)


def account_body(account: AccountView) -> bodies.Account:
    """A vault account without its secret."""
    return bodies.Account(
        id=account.id,
        job_id=account.job_id,
        item_index=account.item_index,
        provider=account.provider,
        external_id=account.external_id,
        username=account.username,
        metadata=account.metadata,
        created_at=account.created_at.isoformat(),
    )


def report_summary(report: Report) -> bodies.ReportSummary:
    """A reconciliation report without its drift rows (the shape `tally report --json` has)."""
    return msgspec.convert(report.as_dict(with_drifts=False), bodies.ReportSummary)


def report_body(report: Report, drift_limit: int, drift_offset: int) -> bodies.Report:
    """A reconciliation report with the page of drift rows it was read with."""
    data = {**report.as_dict(), "drift_limit": drift_limit, "drift_offset": drift_offset}
    return msgspec.convert(data, bodies.Report)
