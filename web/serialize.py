"""Turning views into the JSON shapes the API promises."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.credits import CreditsView
from core.jobs import JobView
from core.stats import StatsView
from core.vault import AccountView


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def job_json(job: JobView) -> dict[str, Any]:
    """The status shape existing frontends poll."""
    return {
        "id": str(job.id),
        "status": job.status,
        "requested": job.requested,
        "successful": job.successful,
        "failures": job.failures,
        "progress": job.progress,
        "provider": job.provider,
        "created_at": _time(job.created_at),
        "started_at": _time(job.started_at),
        "finished_at": _time(job.finished_at),
        "error": job.error,
    }


def stats_json(stats: StatsView) -> dict[str, Any]:
    """The stats card: exactly the user_stats columns."""
    return {"user_id": str(stats.user_id), **stats.counters}


def credits_json(view: CreditsView) -> dict[str, Any]:
    """The balance and recent ledger entries."""
    return {
        "balance": view.balance,
        "entries": [
            {
                "id": e.id,
                "kind": e.kind,
                "amount": e.amount,
                "job_id": None if e.job_id is None else str(e.job_id),
                "note": e.note,
                "created_at": _time(e.created_at),
            }
            for e in view.entries
        ],
    }


def account_json(account: AccountView) -> dict[str, Any]:
    """A vault account without its secret."""
    return {
        "id": str(account.id),
        "job_id": str(account.job_id),
        "item_index": account.item_index,
        "provider": account.provider,
        "external_id": account.external_id,
        "username": account.username,
        "metadata": account.metadata,
        "created_at": _time(account.created_at),
    }


def page_json(items: list[dict[str, Any]], total: int, limit: int, offset: int) -> dict[str, Any]:
    """A paginated list."""
    return {"items": items, "total": total, "limit": limit, "offset": offset}
