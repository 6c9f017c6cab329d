"""A provider for unit tests: set keys fail, transiently or for good; calls are counted."""

from __future__ import annotations

import asyncio
from collections import Counter

from core.errors import PermanentProviderError, TransientProviderError
from core.providers.base import CreatedAccount


class FakeProvider:
    """Fails some keys transiently a set number of times, some permanently; counts calls."""

    name = "fake"

    def __init__(
        self,
        transient: dict[int, int] | None = None,
        permanent: frozenset[int] = frozenset(),
        pause: float = 0.0,
    ) -> None:
        self.transient = dict(transient or {})
        self.permanent = permanent
        self.pause = pause
        self.calls: Counter[str] = Counter()
        self.in_flight = 0
        self.peak = 0
        self.closed = False

    async def create_account(self, idempotency_key: str) -> CreatedAccount:
        self.calls[idempotency_key] += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.pause)
            index = int(idempotency_key.rsplit(":", 1)[1])
            if index in self.permanent:
                raise PermanentProviderError("refused")
            if self.calls[idempotency_key] <= self.transient.get(index, 0):
                raise TransientProviderError("timeout")
            return CreatedAccount(f"ext-{index}", f"user-{index}", f"secret-{index}")
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        self.closed = True
