"""Finished jobs never change: each web process keeps recent ones to answer polls from memory."""

from __future__ import annotations

import uuid

from core.jobs import JobView

DEFAULT_CAPACITY = 10_000


class FinishedJobs:
    """A bounded map of (owner, job id) to the job's final view; oldest entries leave first."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._jobs: dict[tuple[uuid.UUID, uuid.UUID], JobView] = {}

    def get(self, user_id: uuid.UUID, job_id: uuid.UUID) -> JobView | None:
        """Return the owner's finished job if it is kept here."""
        return self._jobs.get((user_id, job_id))

    def keep(self, job: JobView) -> None:
        """Remember a job if it is finished (terminal); others are left alone."""
        if not job.terminal:
            return
        if len(self._jobs) >= self._capacity:
            del self._jobs[next(iter(self._jobs))]
        self._jobs[(job.user_id, job.id)] = job
