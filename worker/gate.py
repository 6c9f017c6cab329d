"""A bound on provider calls in flight that users take turns at when it runs short.

Every slice a worker process runs shares one gate. When all its permits are in use, the
calls waiting for one queue per user, and each freed permit goes to the next user in
turn: a user with ten calls waiting gets every other permit even while another user has
thousands waiting, instead of waiting behind all of them.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Hashable
from types import TracebackType


class FairGate:
    """`permits` calls at once, handed out round-robin between waiting keys."""

    def __init__(self, permits: int) -> None:
        self._free = permits
        self._waiting: OrderedDict[Hashable, deque[asyncio.Future[None]]] = OrderedDict()

    def lane(self, key: Hashable) -> GateLane:
        """An `async with` handle that takes one permit for `key` each time it is entered."""
        return GateLane(self, key)

    @property
    def waiting(self) -> int:
        """Calls waiting for a permit."""
        return sum(len(waiters) for waiters in self._waiting.values())

    async def acquire(self, key: Hashable) -> None:
        """Wait for a permit, behind no more than one waiting call of each other key."""
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, deque()).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted just as it was cancelled: pass the permit on
            else:
                self._forget(key, waiter)
            raise

    def release(self) -> None:
        """Give a permit back: to the next waiting key in turn, else to the free pool."""
        while self._waiting:
            key, waiters = next(iter(self._waiting.items()))
            waiter = waiters.popleft()
            if waiters:
                self._waiting.move_to_end(key)
            else:
                del self._waiting[key]
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    def _forget(self, key: Hashable, waiter: asyncio.Future[None]) -> None:
        waiters = self._waiting.get(key)
        if waiters is None or waiter not in waiters:
            return
        waiters.remove(waiter)
        if not waiters:
            del self._waiting[key]


class GateLane:
    """One key's way through a FairGate, reusable: `async with lane:` per call."""

    def __init__(self, gate: FairGate, key: Hashable) -> None:
        self._gate = gate
        self._key = key

    async def __aenter__(self) -> None:
        await self._gate.acquire(self._key)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._gate.release()
