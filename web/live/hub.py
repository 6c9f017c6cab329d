"""Live job status: notifications fanned out in memory to the requests waiting on a job.

A `Topic` per watched job counts versions: every notification for the job, and every
reconnect of the listener, bumps it and wakes whoever waits. Each notification reaches the
job cache (web/live/job_cache.py) before the waiters wake, so what they read after a wake-up is
at least as new as the change: when thousands of requests watch one job, one database
read serves them all, and no request holds a connection while it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator

from sqlalchemy import Engine

from core.finish import PROGRESS_CHANNEL
from core.listener import Listener
from web.live.job_cache import JobCache


class Topic:
    """The version of one job's status as far as notifications tell."""

    def __init__(self) -> None:
        self.version = 0
        self.watchers = 0
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
    """The web process's live view of jobs: one listener, one hub, one job cache."""

    def __init__(self, database_url: str, reader: Engine) -> None:
        self.hub = Hub()
        self._loop = asyncio.get_running_loop()
        self.listener = Listener(database_url, [PROGRESS_CHANNEL], self._deliver, self._reconnected)
        self.jobs = JobCache.reading(reader, connected=lambda: self.listener.connected)

    def start(self) -> None:
        """Start listening."""
        self.listener.start()

    def stop(self) -> None:
        """Stop listening and close the connection."""
        self.listener.stop()

    def _deliver(self, channel: str, payload: str) -> None:
        self._loop.call_soon_threadsafe(self._on_change, payload)

    def _on_change(self, payload: str) -> None:
        try:
            self.jobs.changed(uuid.UUID(payload))
        except ValueError:
            self.jobs.invalidate_all()
        self.hub.publish(payload)

    def _reconnected(self) -> None:
        self._loop.call_soon_threadsafe(self._on_reconnect)

    def _on_reconnect(self) -> None:
        self.jobs.invalidate_all()
        self.hub.publish_all()
