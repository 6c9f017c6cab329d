"""Failed authentications: counted per client address (with the `limits` library), and
the tokens that failed remembered for a while."""

from __future__ import annotations

import math
import time
from collections import OrderedDict

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


class RefusedTokens:
    """Hashes of tokens found invalid, each remembered `seconds`; at most `limit` of them.

    Checking one costs a dictionary lookup; the oldest is forgotten first when full.
    """

    def __init__(self, limit: int, seconds: float) -> None:
        self._limit = limit
        self._seconds = seconds
        self._until: OrderedDict[str, float] = OrderedDict()

    def holds(self, key: str) -> bool:
        """Whether this token hash was refused within the last `seconds`."""
        until = self._until.get(key)
        if until is None:
            return False
        if until > time.monotonic():
            return True
        del self._until[key]
        return False

    def add(self, key: str) -> None:
        """Remember a refused token hash."""
        self._until[key] = time.monotonic() + self._seconds
        self._until.move_to_end(key)
        while len(self._until) > self._limit:
            self._until.popitem(last=False)
