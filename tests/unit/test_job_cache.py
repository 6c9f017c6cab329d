"""The web process's one job cache: versioned per job, least recently used out, shared reads."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import pytest

from core.database import READER_POOL_SIZE, Database, make_engine
from core.errors import NotFound
from core.jobs import JobView
from core.vocabulary import JobStatus
from web.live.job_cache import CAPACITY, MAX_AGE_SECONDS, JobCache

NOW = datetime(2026, 1, 1, tzinfo=UTC)
URL = "postgresql://nobody@127.0.0.1:9/none"  # engines are built, never connected


def job(status: str, user_id: uuid.UUID | None = None) -> JobView:
    return JobView(
        id=uuid.uuid4(),
        user_id=user_id or uuid.uuid4(),
        status=JobStatus(status),
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


class FakeJobs:
    """Stands in for the jobs table: counts reads, and can hold them open until released."""

    def __init__(self, *jobs: JobView) -> None:
        self.jobs = {j.id: j for j in jobs}
        self.reads = 0
        self.reading = 0
        self.most_at_once = 0
        self.held = False
        self.open: list[asyncio.Event] = []
        self._changed = asyncio.Condition()

    def hold(self) -> None:
        """Keep every read that starts from now on open until it is released."""
        self.held = True

    def release(self, index: int | None = None) -> None:
        """Let one held read finish (by the order they started), or all and hold no more."""
        if index is None:
            self.held = False
        for each in self.open if index is None else [self.open[index]]:
            each.set()

    async def wait_reading(self, count: int = 1) -> None:
        """Wait until `count` reads are open at once."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.reading >= count), 10)

    async def read(self, user_id: uuid.UUID, job_id: uuid.UUID) -> JobView:
        found = self.jobs.get(job_id)  # the state when the read begins
        done = asyncio.Event()
        if self.held:
            self.open.append(done)
        else:
            done.set()
        async with self._changed:
            self.reads += 1
            self.reading += 1
            self.most_at_once = max(self.most_at_once, self.reading)
            self._changed.notify_all()
        await done.wait()
        async with self._changed:
            self.reading -= 1
        if found is None or found.user_id != user_id:
            raise NotFound("no such job")
        return found


class Listening:
    """The listener's state, switchable."""

    def __init__(self) -> None:
        self.connected = True

    def __call__(self) -> bool:
        return self.connected


def cache_on(
    table: FakeJobs,
    listening: Listening | None = None,
    capacity: int = CAPACITY,
    max_age: float = MAX_AGE_SECONDS,
) -> JobCache:
    return JobCache(table.read, 4, listening or Listening(), capacity, max_age)


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def test_a_finished_job_is_read_once_and_again_only_when_a_retry_of_it_is_announced() -> None:
    done = job("completed")
    table, listening = FakeJobs(done), Listening()

    async def scenario() -> None:
        cache = cache_on(table, listening, max_age=0.0)
        assert await cache.get(done.user_id, done.id) == done
        cache.invalidate_all()  # neither age, a missed notification nor the listener's
        listening.connected = False  # state makes a finished job stale
        assert await cache.get(done.user_id, done.id) == done
        assert table.reads == 1
        cache.changed(done.id)  # a retry of it was made: its answer names the retry
        assert await cache.get(done.user_id, done.id) == done
        assert table.reads == 2

    run(scenario)


def test_a_running_job_is_served_until_a_change_for_it_is_announced() -> None:
    running, other = job("running"), job("running")
    table = FakeJobs(running, other)

    async def scenario() -> None:
        cache = cache_on(table)
        for _ in range(3):
            assert await cache.get(running.user_id, running.id) == running
        await cache.get(other.user_id, other.id)
        cache.changed(other.id)
        assert await cache.get(running.user_id, running.id) == running
        assert table.reads == 2
        cache.changed(running.id)
        assert await cache.get(running.user_id, running.id) == running
        assert table.reads == 3

    run(scenario)


def test_a_change_announced_while_the_read_ran_makes_it_stale() -> None:
    running = job("running")
    table = FakeJobs(running)

    async def scenario() -> None:
        cache = cache_on(table)
        table.hold()
        first = asyncio.ensure_future(cache.get(running.user_id, running.id))
        await table.wait_reading()  # the read has begun ...
        cache.changed(running.id)  # ... a slice commits meanwhile ...
        table.release()
        assert await first == running  # ... so what it read may predate the change
        assert await cache.get(running.user_id, running.id) == running
        assert table.reads == 2
        assert await cache.get(running.user_id, running.id) == running
        assert table.reads == 2

    run(scenario)


def test_an_older_read_finishing_last_does_not_replace_a_newer_one() -> None:
    running = job("running")
    done = dataclasses.replace(running, status=JobStatus.COMPLETED)
    table = FakeJobs(running)

    async def scenario() -> None:
        cache = cache_on(table)
        table.hold()
        older = asyncio.ensure_future(cache.get(running.user_id, running.id))
        await table.wait_reading(1)
        table.jobs[running.id] = done
        cache.changed(running.id)
        newer = asyncio.ensure_future(cache.get(running.user_id, running.id))
        await table.wait_reading(2)
        table.release(1)
        assert await newer == done
        table.release()
        assert await older == running
        assert await cache.get(running.user_id, running.id) == done
        assert table.reads == 2

    run(scenario)


def test_a_reconnect_makes_every_running_job_stale() -> None:
    running, done = job("running"), job("failed")
    table = FakeJobs(running, done)

    async def scenario() -> None:
        cache = cache_on(table)
        await cache.get(running.user_id, running.id)
        await cache.get(done.user_id, done.id)
        cache.invalidate_all()
        await cache.get(running.user_id, running.id)
        await cache.get(done.user_id, done.id)
        assert table.reads == 3

    run(scenario)


def test_a_running_job_needs_the_listener_and_a_young_read() -> None:
    running = job("running")
    table, listening = FakeJobs(running), Listening()

    async def scenario() -> None:
        cache = cache_on(table, listening)
        listening.connected = False
        await cache.get(running.user_id, running.id)
        await cache.get(running.user_id, running.id)
        assert table.reads == 2
        aged = cache_on(table, max_age=0.0)
        await aged.get(running.user_id, running.id)
        await aged.get(running.user_id, running.id)
        assert table.reads == 4

    run(scenario)


@pytest.mark.parametrize("status", ["running", "completed"])
def test_a_cached_job_answers_not_found_to_anyone_but_its_owner(status: str) -> None:
    kept = job(status)
    table = FakeJobs(kept)

    async def scenario() -> None:
        cache = cache_on(table)
        await cache.get(kept.user_id, kept.id)
        with pytest.raises(NotFound):
            await cache.get(uuid.uuid4(), kept.id)
        assert table.reads == 1
        assert await cache.get(kept.user_id, kept.id) == kept

    run(scenario)


def test_concurrent_misses_for_a_job_share_one_read() -> None:
    running = job("running")
    table = FakeJobs(running)

    async def scenario() -> None:
        cache = cache_on(table)
        table.hold()
        waiting = [asyncio.ensure_future(cache.get(running.user_id, running.id)) for _ in range(50)]
        await table.wait_reading()
        table.release()
        assert await asyncio.gather(*waiting) == [running] * 50
        assert table.reads == 1

    run(scenario)


def test_a_stranger_asking_meanwhile_neither_shares_nor_spoils_the_owners_read() -> None:
    running = job("running")
    table = FakeJobs(running)

    async def scenario() -> None:
        cache = cache_on(table)
        table.hold()
        owner = asyncio.ensure_future(cache.get(running.user_id, running.id))
        stranger = asyncio.ensure_future(cache.get(uuid.uuid4(), running.id))
        await table.wait_reading()
        table.release()
        assert await owner == running
        with pytest.raises(NotFound):
            await stranger

    run(scenario)


def test_a_caller_that_goes_away_does_not_cancel_the_shared_read() -> None:
    running = job("running")
    table = FakeJobs(running)

    async def scenario() -> None:
        cache = cache_on(table)
        table.hold()
        leaving = asyncio.ensure_future(cache.get(running.user_id, running.id))
        staying = asyncio.ensure_future(cache.get(running.user_id, running.id))
        await table.wait_reading()
        leaving.cancel()
        table.release()
        assert await staying == running
        with pytest.raises(asyncio.CancelledError):
            await leaving
        assert table.reads == 1

    run(scenario)


def test_the_least_recently_used_entry_leaves_first() -> None:
    polled, idle, new = job("completed"), job("completed"), job("completed")
    table = FakeJobs(polled, idle, new)

    async def scenario() -> None:
        cache = cache_on(table, capacity=2)
        await cache.get(polled.user_id, polled.id)
        await cache.get(idle.user_id, idle.id)
        await cache.get(polled.user_id, polled.id)  # still being read: moves to the recent end
        await cache.get(new.user_id, new.id)  # full: the idle entry leaves
        assert table.reads == 3
        await cache.get(polled.user_id, polled.id)
        assert table.reads == 3
        await cache.get(idle.user_id, idle.id)
        assert table.reads == 4
        assert len(cache) == 2

    run(scenario)


def test_an_unknown_job_leaves_no_entry() -> None:
    table = FakeJobs()

    async def scenario() -> None:
        cache = cache_on(table)
        with pytest.raises(NotFound):
            await cache.get(uuid.uuid4(), uuid.uuid4())
        assert len(cache) == 0

    run(scenario)


def test_reads_pass_one_gate_as_wide_as_the_gate_size() -> None:
    many = [job("running") for _ in range(10)]
    table = FakeJobs(*many)

    async def scenario() -> None:
        cache = JobCache(table.read, gate_size=3, connected=Listening())
        table.hold()
        reads = [asyncio.ensure_future(cache.get(j.user_id, j.id)) for j in many]
        await table.wait_reading()
        table.release()
        assert await asyncio.gather(*reads) == many
        assert table.most_at_once == 3

    run(scenario)


def test_the_gate_is_the_reader_pool_by_construction() -> None:
    engine = make_engine(URL, pool_size=3, autocommit=True)
    database = Database(make_engine(URL))
    try:
        assert JobCache.reading(engine, connected=Listening()).gate_size == 3
        reader = database.reader
        assert JobCache.reading(reader, connected=Listening()).gate_size == READER_POOL_SIZE
    finally:
        engine.dispose()
        database.dispose()
