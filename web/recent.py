"""Polls of running jobs answered from memory until the listener reports a change.

Every notification for a job stamps it with the next number of a counter; a job read at
stamp `s` is still current while no notification for it came after `s`, the listener has
stayed connected, and the read is younger than a few seconds (a safety net). All of it
runs on the event loop's thread: notifications arrive there through call_soon_threadsafe.
"""

from __future__ import annotations

import time
import uuid

from core.jobs import JobView

MAX_AGE_SECONDS = 5.0
CAPACITY = 10_000


class RecentJobs:
    """Jobs as last read, each valid until a change for it is announced."""

    def __init__(self, capacity: int = CAPACITY, max_age: float = MAX_AGE_SECONDS) -> None:
        self._capacity = capacity
        self._max_age = max_age
        self._counter = 0
        self._floor = 0  # reads stamped before this may have missed a change
        self._changed: dict[uuid.UUID, int] = {}
        self._reads: dict[tuple[uuid.UUID, uuid.UUID], tuple[int, float, JobView]] = {}

    def stamp(self) -> int:
        """The stamp a read about to start carries."""
        return self._counter

    def changed(self, job_id: uuid.UUID) -> None:
        """A notification said this job changed."""
        self._counter += 1
        self._changed[job_id] = self._counter
        if len(self._changed) > self._capacity:
            self.forget_all()

    def forget_all(self) -> None:
        """Changes may have been missed (listener reconnected): no read is current any more."""
        self._counter += 1
        self._floor = self._counter
        self._changed.clear()
        self._reads.clear()

    def remember(self, stamp: int, job: JobView) -> None:
        """Keep a read that started at `stamp`."""
        if len(self._reads) >= self._capacity:
            del self._reads[next(iter(self._reads))]
        self._reads[(job.user_id, job.id)] = (stamp, time.monotonic(), job)

    def get(self, user_id: uuid.UUID, job_id: uuid.UUID) -> JobView | None:
        """The owner's job as last read, if nothing has changed it since."""
        kept = self._reads.get((user_id, job_id))
        if kept is None:
            return None
        stamp, read_at, job = kept
        if stamp < self._floor or self._changed.get(job_id, 0) > stamp:
            return None
        if time.monotonic() - read_at > self._max_age:
            return None
        return job
