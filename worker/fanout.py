"""Calling a provider for many items at once, with bounded concurrency and retries."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from core.errors import PermanentProviderError, TransientProviderError
from core.providers.base import CreatedAccount, Provider, item_key

BASE_BACKOFF_SECONDS = 0.05


@dataclass(frozen=True)
class ItemOutcome:
    """What happened to one job slot: an account, or the reason it failed."""

    item_index: int
    account: CreatedAccount | None = None
    error: str | None = None


async def create_accounts(
    provider: Provider,
    job_id: uuid.UUID,
    indices: Sequence[int],
    *,
    concurrency: int,
    attempts: int,
    gate: AbstractAsyncContextManager[object] | None = None,
) -> list[ItemOutcome]:
    """Create one account per index; at most `concurrency` calls are in flight.

    A shared `gate` bounds the calls of every slice running on the same loop together.
    """
    outcomes: dict[int, ItemOutcome] = {}
    pending = iter(enumerate(indices))

    async def lane() -> None:
        # `concurrency` lanes each take the next item until none is left: far less
        # scheduling per item than one task per item behind a semaphore.
        for position, index in pending:
            if gate is None:
                outcomes[position] = await _create_with_retries(provider, job_id, index, attempts)
                continue
            async with gate:
                outcomes[position] = await _create_with_retries(provider, job_id, index, attempts)

    await asyncio.gather(*(lane() for _ in range(min(concurrency, len(indices)))))
    return [outcomes[position] for position in range(len(indices))]


async def _create_with_retries(
    provider: Provider, job_id: uuid.UUID, index: int, attempts: int
) -> ItemOutcome:
    key = item_key(job_id, index)
    for attempt in range(1, attempts + 1):
        try:
            return ItemOutcome(index, account=await provider.create_account(key))
        except PermanentProviderError as exc:
            return ItemOutcome(index, error=str(exc))
        except TransientProviderError as exc:
            if attempt == attempts:
                return ItemOutcome(index, error=f"{exc} (after {attempts} attempts)")
            await asyncio.sleep(BASE_BACKOFF_SECONDS * 2 ** (attempt - 1) * random.random())
    raise AssertionError("unreachable: attempts must be at least 1")
