"""Adaptive concurrency for a provider with no configured rate limit: AIMD on its 429s.

The window of calls in flight starts small and doubles with each window of answers (slow
start) until the provider first answers `429`; from then on it halves on a `429` (at most
once per CUT_INTERVAL, multiplicative decrease) and grows by one call per INCREASE_INTERVAL
of answers (additive increase), between 1 and the process's TALLY_PROVIDER_CONCURRENCY.
It settles just under what the provider accepts, so few answers are throttled.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType

INITIAL_WINDOW = 4
CUT_INTERVAL_SECONDS = 0.2
INCREASE_INTERVAL_SECONDS = 1.0


class AdaptiveConcurrency:
    """An async gate whose size follows the provider's answers."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self.limit = min(ceiling, INITIAL_WINDOW)
        self.in_flight = 0
        self.slow_start = True
        self._answers = 0
        self._changed_at = time.monotonic()
        self._cut_at = 0.0
        self._wake = asyncio.Condition()

    async def __aenter__(self) -> AdaptiveConcurrency:
        async with self._wake:
            await self._wake.wait_for(lambda: self.in_flight < self.limit)
            self.in_flight += 1
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        async with self._wake:
            self.in_flight -= 1
            self._wake.notify(max(1, self.limit - self.in_flight))

    def answered(self) -> None:
        """An account came back: grow the window."""
        now = time.monotonic()
        self._answers += 1
        if self.slow_start and self._answers >= self.limit:
            self._resize(self.limit * 2, now)
        elif not self.slow_start and now - self._changed_at >= INCREASE_INTERVAL_SECONDS:
            self._resize(self.limit + 1, now)

    def throttled(self) -> None:
        """The provider answered 429: halve the window (once per burst of 429s)."""
        now = time.monotonic()
        self.slow_start = False
        if now - self._cut_at >= CUT_INTERVAL_SECONDS:
            self._cut_at = now
            self._resize(self.limit // 2, now)

    def _resize(self, limit: int, now: float) -> None:
        self.limit = max(1, min(self.ceiling, limit))
        self._answers = 0
        self._changed_at = now
