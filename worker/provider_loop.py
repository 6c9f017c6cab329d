"""One event loop per worker process on which every slice's provider calls run.

The loop's gate bounds the calls in flight across all the slices a process runs at once,
so while one slice records its outcomes, the others keep the provider busy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import uuid
from collections.abc import Hashable, Sequence

from core.metrics import TimedProvider
from core.providers.base import Provider
from worker.fanout import ItemOutcome, create_accounts
from worker.gate import FairGate

WAIT_SLICE_SECONDS = 0.5


class ProviderLoop:
    """A daemon thread running an asyncio loop, shared by a worker process's threads."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._loop = asyncio.new_event_loop()
        self._gate = FairGate(concurrency)  # users take turns at it when it runs short
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tally-provider-loop", daemon=True
        )
        self._thread.start()

    def run(
        self,
        provider: Provider,
        job_id: uuid.UUID,
        indices: Sequence[int],
        attempts: int,
        *,
        user: Hashable = None,
        lanes: int = 0,
    ) -> list[ItemOutcome]:
        """Create the accounts of one slice on the shared loop and wait for them.

        At most `lanes` calls of the slice are in flight (0: the loop's bound), and the
        slices of different `user`s take turns at the shared bound.
        """
        future = asyncio.run_coroutine_threadsafe(
            self._create(provider, job_id, indices, attempts, user, lanes or self.concurrency),
            self._loop,
        )
        try:
            return _wait(future)
        except BaseException:
            # An interrupt (time limit, shutdown) or failure: stop this slice's calls.
            future.cancel()
            raise

    async def _create(
        self,
        provider: Provider,
        job_id: uuid.UUID,
        indices: Sequence[int],
        attempts: int,
        user: Hashable,
        lanes: int,
    ) -> list[ItemOutcome]:
        try:
            return await create_accounts(
                TimedProvider(provider),
                job_id,
                indices,
                concurrency=min(lanes, self.concurrency),
                attempts=max(1, attempts),
                gate=self._gate.lane(user),
            )
        finally:
            await provider.aclose()

    def close(self) -> None:
        """Stop the loop and its thread."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()


def _wait(future: concurrent.futures.Future[list[ItemOutcome]]) -> list[ItemOutcome]:
    # Short waits keep the calling thread interruptible by Dramatiq's time limit.
    while True:
        try:
            return future.result(timeout=WAIT_SLICE_SECONDS)
        except concurrent.futures.TimeoutError:
            continue
