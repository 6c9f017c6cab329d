"""One provider instance per name for a worker process, kept open across its slices.

Building a provider per slice would open (and close) its connections per slice: every
slice's first calls would wait for new connections while the provider sees fewer calls in
flight. The process's slices borrow the one instance instead; closing a borrowed handle
releases nothing, and the instances are closed once, when the process's provider loop
stops (on that loop, where their connections live).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from core.providers.base import CreatedAccount, Provider
from core.settings import Settings

ProviderFactory = Callable[[str, Settings], Provider]


class SharedProviders:
    """A provider factory that builds each named provider once and lends it to every slice."""

    def __init__(self, build: ProviderFactory) -> None:
        self._build = build
        self._providers: dict[str, Provider] = {}
        self._lock = threading.Lock()  # the worker's threads ask at once

    def __call__(self, name: str, settings: Settings) -> Provider:
        """The process's provider of that name (built with the first caller's settings)."""
        with self._lock:
            provider = self._providers.get(name)
            if provider is None:
                provider = self._providers[name] = self._build(name, settings)
        return BorrowedProvider(provider)

    async def aclose(self) -> None:
        """Close every provider built so far."""
        with self._lock:
            providers, self._providers = list(self._providers.values()), {}
        for provider in providers:
            await provider.aclose()


class BorrowedProvider:
    """A slice's handle on a shared provider: calls pass through, closing keeps it open."""

    def __init__(self, provider: Provider) -> None:
        self._provider = provider
        self.name = provider.name

    async def create_account(self, idempotency_key: str) -> CreatedAccount:
        """Create the account through the shared provider."""
        return await self._provider.create_account(idempotency_key)

    async def aclose(self) -> None:
        """Nothing to release: the provider outlives the slice."""
