"""Counting failed authentications per client address, with the `limits` library."""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class FailureLimiter:
    """Allows each client address `per_minute` failed authentications in any 60 s."""

    def __init__(self, per_minute: int) -> None:
        self._item = RateLimitItemPerMinute(per_minute)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def blocked_for(self, client: str) -> int | None:
        """Seconds until the client may try again, or None when it may now."""
        if self._limiter.test(self._item, client):
            return None
        reset = self._limiter.get_window_stats(self._item, client).reset_time
        return max(1, math.ceil(reset - time.time()))

    def failed(self, client: str) -> None:
        """Count one failed authentication of the client."""
        self._limiter.hit(self._item, client)
