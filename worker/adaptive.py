"""An adaptive rate for a provider with no configured rate limit: AIMD on its 429s.

Each process paces its calls at a rate it learns. The rate starts at START_RATE and, while
it is what holds calls back, doubles every INCREASE_INTERVAL (slow start) until the provider
first answers `429`. A `429` cuts the rate to DECREASE of itself, at most once per
CUT_INTERVAL; from then on it grows by INCREASE of itself (MIN_STEP calls a second at least)
every INCREASE_INTERVAL in which it holds calls back. Bursts of up to BURST_SECONDS of the
rate go out at once. Each worker process learns its share; together they settle just under
what the provider accepts, so few answers are throttled. A rate, unlike a window of calls
in flight, is not held up by the calls a provider is slow to answer.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable

START_RATE = 10.0
BURST_SECONDS = 0.05
MEASURE_SECONDS = 1.0
DECREASE = 0.7
INCREASE = 0.05
MIN_STEP = 1.0
MIN_RATE = 1.0
CUT_INTERVAL_SECONDS = 0.5
INCREASE_INTERVAL_SECONDS = 0.5
BUSY_SHARE = 0.8  # the rate holds calls back when they fill this share of it


class AdaptiveRate:
    """Paces a process's calls to one provider at a rate learned from its 429s."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.rate = START_RATE  # calls per second
        self.slow_start = True
        self._next_at = 0.0
        self._sent: deque[float] = deque()
        self._cut_at = -math.inf
        self._grown_at = -math.inf
        self._turn = asyncio.Lock()  # one call at a time waits for the next place

    async def pace(self, skip: Callable[[], bool] = lambda: False) -> None:
        """Wait for this call's place in the learned rate; count the call as sent.

        When `skip` holds once this call's turn to wait comes (the provider is paused), it
        returns at once and takes no place: a call that cannot go spends none of the rate.
        """
        async with self._turn:
            if skip():
                return
            wait = self._next_at - self._clock() - BURST_SECONDS
            if wait > 0:
                await asyncio.sleep(wait)
            now = self._clock()
            self._next_at = max(now, self._next_at) + 1.0 / self.rate
            self.record_sent(now)

    def throttled(self) -> None:
        """The provider answered 429: cut the rate (once per burst of 429s)."""
        now = self._clock()
        if now - self._cut_at < CUT_INTERVAL_SECONDS:
            return
        self._cut_at = self._grown_at = now
        self.slow_start = False
        self.rate = max(MIN_RATE, self.rate * DECREASE)
        self._next_at = max(self._next_at, now + 1.0 / self.rate)

    def answered(self) -> None:
        """An account came back: grow the rate while it is what holds calls back."""
        now = self._clock()
        if now - self._grown_at < INCREASE_INTERVAL_SECONDS:
            return
        self._grown_at = now
        rate = self.rate
        if self.sent_per_second(now) < BUSY_SHARE * rate:
            return
        self.rate = rate * 2 if self.slow_start else rate + max(MIN_STEP, rate * INCREASE)

    def sent_per_second(self, now: float) -> float:
        """Calls sent over the last MEASURE_SECONDS, per second."""
        self._forget(now)
        return len(self._sent) / MEASURE_SECONDS

    def record_sent(self, now: float) -> None:
        """Count one call as sent at `now` (pace() does, for the calls it lets go)."""
        self._sent.append(now)
        self._forget(now)

    def _forget(self, now: float) -> None:
        while self._sent and self._sent[0] < now - MEASURE_SECONDS:
            self._sent.popleft()
