"""The web process's one read-side cache of jobs: plain polls, long-polls and SSE share it.

Entries are versioned per job: every notification for a job bumps its entry's version, and
a listener reconnect starts a new epoch (changes may have been missed meanwhile). A
finished job never changes, so its entry never goes stale; a running job's entry is served
while the version and epoch are those its read started at, the listener is connected and
the read is younger than a safety age. Entries leave least recently used first.

Concurrent misses for a job share one database read, and every read passes one gate as
wide as the reader engine's pool, so waiting requests never queue for a connection. All of
it runs on the event loop's thread (notifications arrive there via call_soon_threadsafe).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.pool import QueuePool
from starlette.concurrency import run_in_threadpool

from core import jobs
from core.errors import NotFound
from core.jobs import JobView

MAX_AGE_SECONDS = 5.0
CAPACITY = 10_000

Fetch = Callable[[uuid.UUID, uuid.UUID], Awaitable[JobView]]


@dataclass(eq=False)
class _Flight:
    """One database read in progress, and the state of the entry when it began."""

    user_id: uuid.UUID
    version: int
    epoch: int
    task: asyncio.Future[JobView]

    def serves(self, user_id: uuid.UUID, version: int, epoch: int) -> bool:
        """Whether a caller may share this read: same user, nothing changed since it began."""
        began = (self.user_id, self.version, self.epoch)
        return not self.task.done() and began == (user_id, version, epoch)


@dataclass(eq=False)
class _Entry:
    """A job as last read, with the version and epoch that read began at."""

    version: int = 0
    job: JobView | None = None
    read_version: int = 0
    read_epoch: int = 0
    read_at: float = 0.0
    flight: _Flight | None = None


def pool_size(engine: Engine) -> int:
    """How many connections the engine's pool holds (1 for a pool without a fixed size)."""
    pool = engine.pool
    return pool.size() if isinstance(pool, QueuePool) else 1


class JobCache:
    """Jobs by id as last read, each current until a change for it may have happened."""

    def __init__(
        self,
        fetch: Fetch,
        gate_size: int,
        connected: Callable[[], bool],
        capacity: int = CAPACITY,
        max_age: float = MAX_AGE_SECONDS,
    ) -> None:
        self.gate_size = gate_size
        self._fetch = fetch
        self._gate = asyncio.Semaphore(gate_size)
        self._connected = connected
        self._capacity = capacity
        self._max_age = max_age
        self._epoch = 0
        self._entries: OrderedDict[uuid.UUID, _Entry] = OrderedDict()

    @classmethod
    def reading(cls, reader: Engine, connected: Callable[[], bool]) -> JobCache:
        """A cache that reads with core.jobs.read_job, gated at the reader's pool size."""

        async def fetch(user_id: uuid.UUID, job_id: uuid.UUID) -> JobView:
            return await run_in_threadpool(jobs.read_job, reader, user_id, job_id)

        return cls(fetch, pool_size(reader), connected)

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, user_id: uuid.UUID, job_id: uuid.UUID) -> JobView:
        """The caller's job: from memory while current, else read once for all who ask."""
        entry = self._entries.get(job_id)
        if entry is not None and entry.job is not None and self._current(entry, entry.job):
            self._entries.move_to_end(job_id)
            return _owned(entry.job, user_id)
        return await asyncio.shield(self._flight(job_id, user_id))

    def changed(self, job_id: uuid.UUID) -> None:
        """A notification said this job changed."""
        entry = self._entries.get(job_id)
        if entry is not None:
            entry.version += 1

    def invalidate_all(self) -> None:
        """Changes may have been missed (the listener reconnected): no running job is current."""
        self._epoch += 1

    def _current(self, entry: _Entry, job: JobView) -> bool:
        if job.terminal:  # only a retry of it changes it, and that notifies
            return entry.read_version == entry.version
        return (
            (entry.read_version, entry.read_epoch) == (entry.version, self._epoch)
            and self._connected()
            and time.monotonic() - entry.read_at <= self._max_age
        )

    def _flight(self, job_id: uuid.UUID, user_id: uuid.UUID) -> asyncio.Future[JobView]:
        """The read this caller shares: one begun at the entry's present state, or a new one."""
        entry = self._entry(job_id)
        version, epoch = entry.version, self._epoch
        flight = entry.flight
        if flight is None or not flight.serves(user_id, version, epoch):
            task = asyncio.ensure_future(self._read(job_id, entry, user_id, version, epoch))
            flight = entry.flight = _Flight(user_id, version, epoch, task)
        return flight.task

    def _entry(self, job_id: uuid.UUID) -> _Entry:
        entry = self._entries.get(job_id)
        if entry is not None:
            self._entries.move_to_end(job_id)
            return entry
        entry = self._entries[job_id] = _Entry()
        if len(self._entries) > self._capacity:
            self._entries.popitem(last=False)
        return entry

    async def _read(
        self, job_id: uuid.UUID, entry: _Entry, user_id: uuid.UUID, version: int, epoch: int
    ) -> JobView:
        try:
            async with self._gate:
                began = time.monotonic()
                job = await self._fetch(user_id, job_id)
        except BaseException:
            if entry.job is None and self._entries.get(job_id) is entry:
                del self._entries[job_id]  # unknown ids must not push real entries out
            raise
        unchanged = (version, epoch) == (entry.version, self._epoch)
        if self._entries.get(job_id) is entry and (unchanged or job.terminal):
            entry.job, entry.read_version, entry.read_epoch = job, version, epoch
            entry.read_at = began
        return job


def _owned(job: JobView, user_id: uuid.UUID) -> JobView:
    if job.user_id != user_id:
        raise NotFound("no such job")
    return job
