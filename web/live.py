"""Live job status: notifications fanned out in memory to the requests waiting on a job.

A `Topic` per watched job counts versions: every notification for the job, and every
reconnect of the listener, bumps it and wakes whoever waits. Reads after a wake-up go
through a small gate and are shared: when thousands of requests watch one job, one
database read serves them all, and no request holds a connection while it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from core import jobs
from core.errors import NotFound
from core.finish import PROGRESS_CHANNEL
from core.jobs import JobView
from web.listener import Listener
from web.recent import RecentJobs

READ_CONCURRENCY = 4


class Topic:
    """The version of one job's status as far as notifications tell, and its last read."""

    def __init__(self) -> None:
        self.version = 0
        self.watchers = 0
        self.snapshot: tuple[int, JobView] | None = None
        self.lock = asyncio.Lock()
        self._changed = asyncio.Event()

    def bump(self) -> None:
        """Record a change and wake everyone waiting on the previous version."""
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_beyond(self, version: int, timeout: float) -> bool:
        """Wait until the version moves past `version`; False if `timeout` passed first."""
        if self.version != version:
            return True
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return False
        return True


class Hub:
    """Topics by job id, living on one event loop."""

    def __init__(self) -> None:
        self._topics: dict[str, Topic] = {}

    @contextlib.contextmanager
    def watch(self, job_id: uuid.UUID) -> Iterator[Topic]:
        """Watch a job for the length of a `with` block."""
        key = str(job_id)
        topic = self._topics.get(key)
        if topic is None:
            topic = self._topics[key] = Topic()
        topic.watchers += 1
        try:
            yield topic
        finally:
            topic.watchers -= 1
            if topic.watchers == 0:
                self._topics.pop(key, None)

    def publish(self, key: str) -> None:
        """A job changed."""
        topic = self._topics.get(key)
        if topic is not None:
            topic.bump()

    def publish_all(self) -> None:
        """Anything may have changed (the listener was away): wake every watcher."""
        for topic in list(self._topics.values()):
            topic.bump()

    @property
    def watched(self) -> int:
        """How many jobs have at least one watcher."""
        return len(self._topics)

    @property
    def watchers(self) -> int:
        """How many requests are watching a job right now."""
        return sum(topic.watchers for topic in list(self._topics.values()))


class LiveJobs:
    """The web process's live view of jobs: one listener, one hub, shared reads."""

    def __init__(self, database_url: str, reader: Engine) -> None:
        self.hub = Hub()
        self.recent = RecentJobs()
        self._reader = reader  # every job read of this process: at most READ_CONCURRENCY at once
        self._gate = asyncio.Semaphore(READ_CONCURRENCY)
        self._loop = asyncio.get_running_loop()
        self.listener = Listener(database_url, [PROGRESS_CHANNEL], self._deliver, self._reconnected)

    def start(self) -> None:
        """Start listening."""
        self.listener.start()

    def stop(self) -> None:
        """Stop listening and close the connection."""
        self.listener.stop()

    async def read(self, topic: Topic, user_id: uuid.UUID, job_id: uuid.UUID) -> JobView:
        """Return the caller's job as of the topic's version, reading at most once per version."""
        async with topic.lock:
            snapshot = topic.snapshot
            if snapshot is None or snapshot[0] != topic.version or not self.listener.connected:
                version = topic.version
                async with self._gate:
                    job = await run_in_threadpool(jobs.read_job, self._reader, user_id, job_id)
                snapshot = topic.snapshot = (version, job)
        if snapshot[1].user_id != user_id:
            raise NotFound("no such job")
        return snapshot[1]

    async def current(self, user_id: uuid.UUID, job_id: uuid.UUID) -> JobView:
        """The caller's job for a plain poll: as last read while no change was announced."""
        if self.listener.connected:
            job = self.recent.get(user_id, job_id)
            if job is not None:
                return job
        stamp = self.recent.stamp()
        async with self._gate:
            job = await run_in_threadpool(jobs.read_job, self._reader, user_id, job_id)
        self.recent.remember(stamp, job)
        return job

    def _deliver(self, channel: str, payload: str) -> None:
        self._loop.call_soon_threadsafe(self._on_change, payload)

    def _on_change(self, payload: str) -> None:
        self.hub.publish(payload)
        try:
            self.recent.changed(uuid.UUID(payload))
        except ValueError:
            self.recent.forget_all()

    def _reconnected(self) -> None:
        self._loop.call_soon_threadsafe(self._on_reconnect)

    def _on_reconnect(self) -> None:
        self.recent.forget_all()
        self.hub.publish_all()
