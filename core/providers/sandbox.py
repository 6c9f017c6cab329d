"""The sandbox provider: deterministic accounts for development, tests and benchmarks."""

from __future__ import annotations

import asyncio
import hashlib
import random

from core.errors import PermanentProviderError, TransientProviderError
from core.providers.base import CreatedAccount
from core.settings import SandboxOptions


def _unit_interval(digest: bytes) -> float:
    return int.from_bytes(digest[:8], "big") / 2**64


class SandboxProvider:
    """Derives every account from its key; fails at configured rates."""

    name = "sandbox"

    def __init__(self, options: SandboxOptions, rng: random.Random | None = None) -> None:
        self._options = options
        self._rng = rng or random.Random()

    async def create_account(self, idempotency_key: str) -> CreatedAccount:
        """Return the account this key always yields, or fail as configured."""
        if self._options.latency_ms > 0:
            await asyncio.sleep(self._options.latency_ms / 1000)
        if self._rng.random() < self._options.transient_rate:
            raise TransientProviderError("sandbox: simulated timeout")
        digest = hashlib.sha256(idempotency_key.encode("utf-8")).digest()
        if _unit_interval(digest) < self._options.failure_rate:
            raise PermanentProviderError("sandbox: simulated refusal")
        return CreatedAccount(
            external_id="sbx_" + digest[:8].hex(),
            username="user_" + digest[8:14].hex(),
            secret=digest[14:30].hex(),
            metadata={"provider": "sandbox"},
        )

    async def aclose(self) -> None:
        """Nothing to release."""
