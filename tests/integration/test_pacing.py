"""The shared pacer on a real Redis: one pause and one rate for every process."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis

from core.providers.http import parse_retry_after
from core.vocabulary import WaitingReason
from worker.pacing import LocalPacer, RedisPacer
from worker.pushback import SliceRun

T = TypeVar("T")


def on_redis(redis_url: str, body: Callable[[Callable[..., RedisPacer]], Awaitable[T]]) -> T:
    """Run `body` with a maker of pacers that share one provider name on the test Redis."""
    name = f"test-{uuid.uuid4().hex[:8]}"

    async def main() -> T:
        made: list[RedisPacer] = []

        def pacer(rate: float = 0.0, cap: float = 1.0, probe: float = 5.0) -> RedisPacer:
            client = aioredis.Redis.from_url(redis_url)
            made.append(RedisPacer(client, name, rate, cap, probe))
            return made[-1]

        try:
            return await body(pacer)
        finally:
            for one in made:
                await one.aclose()

    return asyncio.run(main())


def test_a_pushback_with_retry_after_pauses_every_other_process(redis_url: str) -> None:
    async def body(pacer: Callable[..., RedisPacer]) -> None:
        first, second = pacer(), pacer()
        assert (await second.acquire()).granted
        pushed = await first.pushback(2.0, WaitingReason.UNAVAILABLE, pause=True)
        assert 1.5 < pushed.pause <= 2.0
        second._fresh_until = 0.0  # what 100 ms without asking would do
        permit = await second.acquire()
        assert not permit.granted and permit.paused and permit.reason == WaitingReason.UNAVAILABLE
        assert 1.5 < permit.wait <= 2.0

    on_redis(redis_url, body)


def test_after_a_pause_one_call_probes_and_an_answer_lets_everyone_go(redis_url: str) -> None:
    async def body(pacer: Callable[..., RedisPacer]) -> None:
        first, second = pacer(), pacer()
        await first.pushback(0.05, WaitingReason.RATE_LIMITED, pause=True)
        await asyncio.sleep(0.1)
        probe = await first.acquire()
        held = await second.acquire()
        assert probe.granted and not held.granted and held.paused
        await first.answered()
        assert (await second.acquire()).granted

    on_redis(redis_url, body)


def test_unavailability_is_timed_from_the_first_pushback_across_processes(
    redis_url: str,
) -> None:
    async def body(pacer: Callable[..., RedisPacer]) -> None:
        first, second = pacer(), pacer()
        await first.pushback(None, WaitingReason.UNAVAILABLE, pause=False)
        await asyncio.sleep(0.3)
        pushed = await second.pushback(None, WaitingReason.UNAVAILABLE, pause=False)
        assert pushed.unavailable_for >= 0.25
        await second.answered()
        again = await first.pushback(None, WaitingReason.UNAVAILABLE, pause=False)
        assert again.unavailable_for < pushed.unavailable_for  # timed afresh

    on_redis(redis_url, body)


def test_the_rate_limit_holds_for_every_pacer_together(redis_url: str) -> None:
    rate = 50.0

    async def body(pacer: Callable[..., RedisPacer]) -> tuple[int, float]:
        pacers = [pacer(rate) for _ in range(3)]
        clock = aioredis.Redis.from_url(redis_url)
        seconds, micros = await clock.time()
        granted = 0

        async def lane(one: RedisPacer) -> None:
            nonlocal granted
            while granted < 100:
                permit = await one.acquire()
                await asyncio.sleep(permit.wait)
                granted += permit.granted

        await asyncio.wait_for(asyncio.gather(*(lane(p) for p in pacers for _ in range(5))), 30)
        tat = float(await clock.get(pacers[0]._keys[1]) or 0)  # the rate's next free place
        await clock.connection_pool.disconnect()
        return granted, tat - (seconds * 1000 + micros // 1000)

    granted, places_ms = on_redis(redis_url, body)
    # Every grant, of any pacer, took the next place of the one rate, after the one before:
    # the places they took span at least a place per grant.
    assert granted >= 100
    assert places_ms >= granted * 1000 / rate


def test_without_redis_the_process_paces_itself() -> None:
    async def body() -> None:
        pacer = LocalPacer(rate_limit=0.0, backoff_cap=0.4)
        pushed = await pacer.pushback(None, WaitingReason.UNAVAILABLE, pause=True)
        assert 0.125 <= pushed.pause <= 0.25  # the first backoff, jittered
        assert not (await pacer.acquire()).granted
        for _ in range(6):
            pushed = await pacer.pushback(None, WaitingReason.UNAVAILABLE, pause=True)
        assert pushed.pause <= 0.4  # capped

    asyncio.run(body())


def test_a_pause_past_the_wait_budget_stops_the_slice_but_its_own_rate_does_not() -> None:
    told: list[tuple[str | None, float | None]] = []
    run = SliceRun(budget=1.0, listener=lambda reason, at: told.append((reason, at)))
    assert run.wait(WaitingReason.RATE_LIMITED, 5.0, paused=False)
    assert not run.stopping
    assert run.wait(WaitingReason.UNAVAILABLE, 0.5)
    assert not run.wait(WaitingReason.UNAVAILABLE, 2.0)
    deferred = run.deferred()
    assert deferred is not None and deferred.reason == WaitingReason.UNAVAILABLE
    assert told[0][0] == WaitingReason.RATE_LIMITED and told[-1][0] == WaitingReason.UNAVAILABLE


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
