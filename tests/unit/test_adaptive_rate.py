"""The adaptive rate: slow start, a cut on 429, additive increase, and pacing."""

from __future__ import annotations

import asyncio

import pytest

from worker.adaptive import (
    BURST_SECONDS,
    DECREASE,
    INCREASE_INTERVAL_SECONDS,
    START_RATE,
    AdaptiveRate,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def busy(rate: AdaptiveRate, clock: Clock) -> None:
    """Send at the full rate for one increase interval, then answer."""
    sends = max(1, round(rate.rate * INCREASE_INTERVAL_SECONDS * 2))
    for _ in range(sends):
        rate.record_sent(clock.now)
    clock.now += INCREASE_INTERVAL_SECONDS
    rate.answered()


def test_the_rate_doubles_while_busy_until_the_first_429_then_grows_by_a_little() -> None:
    clock = Clock()
    rate = AdaptiveRate(clock)
    assert rate.rate == START_RATE
    busy(rate, clock)
    busy(rate, clock)
    assert rate.rate == START_RATE * 4
    rate.throttled()
    cut = START_RATE * 4 * DECREASE
    assert rate.rate == cut and not rate.slow_start
    rate.throttled()  # the same burst of 429s cuts once
    assert rate.rate == cut
    busy(rate, clock)
    assert cut < rate.rate < cut * 1.2


def test_an_idle_rate_does_not_grow() -> None:
    clock = Clock()
    rate = AdaptiveRate(clock)
    for _ in range(5):
        clock.now += INCREASE_INTERVAL_SECONDS
        rate.answered()
    assert rate.rate == START_RATE


def test_pace_spaces_calls_at_the_rate_beyond_a_short_burst(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # the fake clock moves as far as pace() waits
        slept.append(seconds)
        clock.now += seconds

    monkeypatch.setattr("worker.adaptive.asyncio.sleep", sleep)
    rate = AdaptiveRate(clock)
    rate.rate = 200.0

    async def send(n: int) -> None:
        for _ in range(n):
            await rate.pace()

    started = clock.now
    burst = int(200 * BURST_SECONDS)
    asyncio.run(send(burst + 40))
    # The burst goes at once; every call past it waits for its place, 5 ms after the last.
    assert len(slept) >= 39 and slept == pytest.approx([1 / 200] * len(slept))
    assert rate.sent_per_second(clock.now) == burst + 40
    assert clock.now - started == pytest.approx((burst + 40 - 1) / 200 - BURST_SECONDS)
