"""The web process's memory of finished jobs: only terminal jobs, per owner, bounded."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from core.jobs import JobView
from web.finished_jobs import FinishedJobs

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def job(status: str, user_id: uuid.UUID | None = None) -> JobView:
    return JobView(
        id=uuid.uuid4(),
        user_id=user_id or uuid.uuid4(),
        status=status,
        provider="sandbox",
        requested=3,
        successful=2,
        failures=1,
        slices_total=1,
        error=None,
        created_at=NOW,
        started_at=NOW,
        finished_at=NOW,
        updated_at=NOW,
    )


def test_only_finished_jobs_are_kept_and_only_for_their_owner() -> None:
    finished = FinishedJobs()
    done, running = job("completed"), job("running")
    finished.keep(done)
    finished.keep(running)
    assert finished.get(done.user_id, done.id) == done
    assert finished.get(running.user_id, running.id) is None
    assert finished.get(uuid.uuid4(), done.id) is None


def test_the_oldest_entry_leaves_when_full() -> None:
    finished = FinishedJobs(capacity=2)
    first, second, third = job("completed"), job("failed"), job("completed")
    for each in (first, second, third):
        finished.keep(each)
    assert finished.get(first.user_id, first.id) is None
    assert finished.get(third.user_id, third.id) == third
