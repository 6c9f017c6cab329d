"""Calling a provider for many items at once, with bounded concurrency and retries.

Two ways to treat a transient error. Without a pacer (the sandbox), an item is retried
`attempts` times, then counted as a failure. With one (a provider that pushes back),
pushback pauses every caller through the pacer, an ambiguous outcome is retried with the
same key after a backoff, and an item fails only once the provider has been unavailable
for the patience; only permanent refusals fail it sooner.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass

from core.errors import (
    PermanentProviderError,
    ProviderError,
    ProviderPushback,
    TransientProviderError,
)
from core.metrics import observe_pause
from core.providers.base import CreatedAccount, Provider, slot_key
from core.vocabulary import FailureReason, WaitingReason
from worker.adaptive import AdaptiveRate
from worker.pacing import Pacer, Permit, backoff
from worker.pushback import SliceRun

BASE_BACKOFF_SECONDS = 0.05


@dataclass(frozen=True)
class ItemOutcome:
    """What happened to one job slot: an account, or the reason it failed."""

    item_index: int
    account: CreatedAccount | None = None
    error: str | None = None
    reason: FailureReason | None = None  # a failure's kind
    orphans: int = 0  # accounts the provider may hold for this slot beyond the vault's
    ambiguous: bool = False  # a failure after calls that went unanswered: its key is kept


@dataclass(frozen=True)
class Patience:
    """What a paced fan-out needs: the shared pacer, the slice's run and the patience."""

    pacer: Pacer
    run: SliceRun
    seconds: float
    backoff_cap: float
    rate: AdaptiveRate | None = None  # with no configured rate limit: AIMD on 429s
    job_started: float = 0.0  # monotonic; unavailability counts from then at the earliest

    def exhausted(self, unavailable_for: float) -> bool:
        """Whether the provider has been unavailable for the patience during this job."""
        within_job = min(unavailable_for, time.monotonic() - self.job_started)
        return within_job >= self.seconds


async def create_accounts(
    provider: Provider,
    job_id: uuid.UUID,
    indices: Sequence[int],
    *,
    concurrency: int,
    attempts: int,
    gate: AbstractAsyncContextManager[object] | None = None,
    patience: Patience | None = None,
    stop: Callable[[], bool] | None = None,
    kept_keys: Mapping[int, str] | None = None,
) -> list[ItemOutcome]:
    """Create one account per index; at most `concurrency` calls are in flight.

    A shared `gate` bounds the calls of every slice running on the same loop together.
    With `patience`, a slice the provider asks to wait past its budget raises
    SliceDeferred once its calls in flight have ended. Once `stop()` is true no new call
    starts (a slot whose call may have created an account is still asked until it answers):
    the items not attempted have no outcome. A slot in `kept_keys` asks with that key
    instead of its own (a retry of a slot whose outcome was ambiguous).
    """
    stopped = stop or _never
    kept = kept_keys or {}
    outcomes: dict[int, ItemOutcome] = {}
    pending = iter(enumerate(indices))

    async def lane() -> None:
        # `concurrency` lanes each take the next item until none is left: far less
        # scheduling per item than one task per item behind a semaphore.
        for position, index in pending:
            if stopped():
                return
            if patience is not None:
                outcome = await _create_patiently(
                    provider, slot_key(job_id, index, kept), index, gate, patience, stopped
                )
                if outcome is None:
                    return
                outcomes[position] = outcome
                continue
            async with gate or nullcontext():
                if stopped():
                    return
                outcomes[position] = await _create_with_retries(
                    provider, slot_key(job_id, index, kept), index, attempts
                )

    await asyncio.gather(*(lane() for _ in range(min(concurrency, len(indices)))))
    deferred = None if patience is None else patience.run.deferred()
    if deferred is not None:
        raise deferred
    return [outcomes[position] for position in range(len(indices)) if position in outcomes]


def _never() -> bool:
    return False


async def _create_with_retries(
    provider: Provider, key: str, index: int, attempts: int
) -> ItemOutcome:
    for attempt in range(1, attempts + 1):
        try:
            return ItemOutcome(index, account=await provider.create_account(key))
        except PermanentProviderError as exc:
            # Earlier attempts that went unanswered may have created the account.
            refused = FailureReason.REFUSED
            return ItemOutcome(index, error=str(exc), reason=refused, ambiguous=attempt > 1)
        except TransientProviderError as exc:
            if attempt == attempts:
                error = f"{exc} (after {attempts} attempts)"
                exhausted = FailureReason.RETRIES_EXHAUSTED
                return ItemOutcome(index, error=error, reason=exhausted, ambiguous=True)
            await asyncio.sleep(BASE_BACKOFF_SECONDS * 2 ** (attempt - 1) * random.random())
    raise AssertionError("unreachable: attempts must be at least 1")


async def _create_patiently(
    provider: Provider,
    key: str,
    index: int,
    gate: AbstractAsyncContextManager[object] | None,
    patience: Patience,
    stopped: Callable[[], bool],
) -> ItemOutcome | None:
    """One slot's outcome, or None when the slice stopped (to wait elsewhere, or cancelled)."""
    pacer, run = patience.pacer, patience.run
    ambiguous = 0
    rng = random.Random()

    def may_stop() -> bool:
        # A slot with an unanswered call is asked again even after a cancel, so that an
        # account the provider may have created reaches the vault.
        return ambiguous == 0 and stopped()

    while not run.stopping and not may_stop():
        answer = await _attempt(provider, key, gate, patience, may_stop)
        if answer is None:
            return None
        if isinstance(answer, Permit):
            if answer.paused and patience.exhausted(answer.unavailable_for):
                return _out_of_patience(index, answer.unavailable_for, ambiguous)
            if run.wait(
                answer.reason or WaitingReason.UNAVAILABLE,
                answer.wait,
                paused=answer.paused,
            ):
                await asyncio.sleep(answer.wait)
            continue
        if isinstance(answer, PermanentProviderError):
            await pacer.answered()
            return ItemOutcome(
                index,
                error=str(answer),
                reason=FailureReason.REFUSED,
                orphans=ambiguous,
                ambiguous=ambiguous > 0,
            )
        if isinstance(answer, ProviderPushback):
            if patience.rate is not None and answer.reason == WaitingReason.RATE_LIMITED:
                patience.rate.throttled()
            observe_pause(provider.name, answer.reason)
            pushed = await pacer.pushback(answer.retry_after, answer.reason, pause=True)
            if patience.exhausted(pushed.unavailable_for):
                return _out_of_patience(index, pushed.unavailable_for, ambiguous)
            continue
        if isinstance(answer, TransientProviderError):
            # Ambiguous (or unclassified): the account may exist; ask again with the same key.
            ambiguous += 1
            pushed = await pacer.pushback(None, WaitingReason.UNAVAILABLE, pause=False)
            if patience.exhausted(pushed.unavailable_for):
                return _out_of_patience(index, pushed.unavailable_for, ambiguous)
            await asyncio.sleep(backoff(ambiguous - 1, patience.backoff_cap, rng))
            continue
        if isinstance(answer, ProviderError):
            raise answer  # the provider cannot run at all (ProviderUnavailable)
        await pacer.answered()
        run.answered()
        if patience.rate is not None:
            patience.rate.answered()
        # Each unanswered call may have created an account; a replay says it was this one.
        orphaned = 0 if answer.replayed else ambiguous
        return ItemOutcome(index, account=answer, orphans=orphaned)
    return None


async def _attempt(
    provider: Provider,
    key: str,
    gate: AbstractAsyncContextManager[object] | None,
    patience: Patience,
    may_stop: Callable[[], bool],
) -> CreatedAccount | ProviderError | Permit | None:
    """One call when the pacer allows it: its account or error, else the refused permit;
    None when the slot stopped before its call was sent.

    The adaptive rate's place is taken before the pacer is asked, so that calls queued for
    the rate never go out after a pause they did not see.
    """
    if patience.rate is not None:
        # A call that would only meet a pause known here takes no place in the rate, so an
        # outage's waiting slots reach their patience together, not one place at a time.
        await patience.rate.pace(skip=patience.pacer.paused_now)
    permit = await patience.pacer.acquire()
    if not permit.granted:
        return permit
    if permit.wait:
        await asyncio.sleep(permit.wait)
    if time.monotonic() > permit.send_by:
        # Woken too late for its slot: ask again rather than send in a burst.
        return Permit(False, 0.0, WaitingReason.RATE_LIMITED, permit.unavailable_for)
    bound: AbstractAsyncContextManager[object] = gate if gate is not None else nullcontext()
    try:
        async with bound:
            if may_stop():
                return None
            return await provider.create_account(key)
    except ProviderError as exc:
        return exc


def _out_of_patience(index: int, seconds: float, ambiguous: int) -> ItemOutcome:
    error = f"the provider was unavailable for {seconds:.0f} s"
    # An unanswered call may have created an account the vault will never hold.
    unavailable = FailureReason.UNAVAILABLE
    return ItemOutcome(
        index, error=error, reason=unavailable, orphans=ambiguous, ambiguous=ambiguous > 0
    )
