"""How long a slice waits on a pushing-back provider, and when it gives its message back.

A slice waits on the shared provider loop (asyncio sleeps, no thread busy) while its lease
is kept. When the provider asks it to wait past the slice's wait budget, the slice stops
starting calls and raises SliceDeferred: its message is given back with a delay, without
counting as a failed attempt.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from core.settings import MAX_SLICE_WAIT_SECONDS, Settings

# The providers whose pushback is waited out with patience and shared pacing.
PATIENT_PROVIDERS = frozenset({"http"})


@dataclass(frozen=True)
class PushbackPolicy:
    """The settings pushback handling runs with."""

    patience: float
    slice_wait: float
    backoff_cap: float
    rate_limit: float
    redis_url: str
    probe_timeout: float = 10.0  # how long one probe after a pause holds the others back
    patient_providers: frozenset[str] = PATIENT_PROVIDERS

    @classmethod
    def from_settings(cls, settings: Settings) -> PushbackPolicy:
        """The policy a worker process runs with."""
        return cls(
            patience=settings.provider_patience,
            slice_wait=settings.slice_wait,
            backoff_cap=settings.provider_backoff_max,
            rate_limit=settings.provider_rate_limit,
            redis_url=settings.redis_url,
            probe_timeout=settings.provider_timeout + 1.0,
        )


class SliceDeferred(Exception):
    """The provider asked a slice to wait past its budget: re-send it at `retry_at`."""

    def __init__(self, retry_at: float, reason: str) -> None:
        super().__init__(f"waiting for the provider ({reason}) until {retry_at:.0f}")
        self.retry_at = retry_at  # epoch seconds
        self.reason = reason


WaitListener = Callable[[str | None, float | None], None]


class SliceRun:
    """One slice's run on the provider loop: its wait budget and whether it is stopping."""

    def __init__(self, budget: float, listener: WaitListener | None = None) -> None:
        self._budget = budget
        self._last_call = time.monotonic() + MAX_SLICE_WAIT_SECONDS
        self._paused_since: float | None = None
        self._listener = listener
        self.stopping = False
        self.retry_at = 0.0
        self.reason = ""
        self._waiting: str | None = None

    def wait(self, reason: str, seconds: float, paused: bool = True) -> bool:
        """Note a wait of `seconds`; False (and stop the slice) when it ends past the budget.

        Pauses the provider asked for may last the slice's wait budget, counted from the
        first one since the provider last answered; a wait for the deployment's own rate
        limit never stops the slice, short of the actor's time limit.
        """
        now = time.monotonic()
        if seconds >= 1 or (paused and reason != self._waiting):
            self._tell(reason, time.time() + seconds)
        deadline = self._last_call
        if paused:
            self._paused_since = self._paused_since or now
            deadline = min(deadline, self._paused_since + self._budget)
        if now + seconds <= deadline:
            return True
        self.stopping = True
        self.retry_at = max(self.retry_at, time.time() + seconds)
        self.reason = reason
        return False

    def answered(self) -> None:
        """The provider answered: the slice no longer waits."""
        self._paused_since = None
        if self._waiting is not None:
            self._tell(None, None)

    def deferred(self) -> SliceDeferred | None:
        """The deferral to raise once the lanes stopped, if the slice is stopping."""
        return SliceDeferred(self.retry_at, self.reason) if self.stopping else None

    def _tell(self, reason: str | None, retry_at: float | None) -> None:
        self._waiting = reason
        if self._listener is not None:
            self._listener(reason, retry_at)
