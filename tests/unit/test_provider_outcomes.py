"""Provider calls are counted by what they answered, and pushback is sorted by the worker."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from prometheus_client import REGISTRY

from core.errors import AmbiguousProviderError, PermanentProviderError, ProviderPushback
from core.metrics import TimedProvider
from core.providers.base import CreatedAccount
from core.vocabulary import FailureReason, WaitingReason
from worker.adaptive import AdaptiveRate
from worker.fanout import ItemOutcome, Patience, create_accounts
from worker.pacing import LocalPacer
from worker.pushback import SliceDeferred, SliceRun

JOB = uuid.UUID("8f7c1a52-3b1e-4f7a-9d6e-2c4b5a697e10")


class Scripted:
    """Answers each call with the next of a list of outcomes (an account or an error)."""

    name = "scripted"

    def __init__(self, *answers: CreatedAccount | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def create_account(self, idempotency_key: str) -> CreatedAccount:
        self.calls += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def aclose(self) -> None:
        """Nothing to release."""


def account(replayed: bool = False) -> CreatedAccount:
    return CreatedAccount("ext", "user", "secret", replayed=replayed)


def counted(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "tally_provider_requests_total", {"provider": "scripted", "outcome": outcome}
    )
    return value or 0.0


def run(provider: Scripted, patience: float = 30.0, budget: float = 30.0) -> list[ItemOutcome]:
    async def main() -> list[ItemOutcome]:
        paced = Patience(LocalPacer(0.0, 0.01), SliceRun(budget), patience, 0.01)
        outcomes = await create_accounts(
            TimedProvider(provider), JOB, [0], concurrency=1, attempts=1, patience=paced
        )
        return list(outcomes)

    return asyncio.run(main())


def test_pushback_and_ambiguous_answers_are_retried_until_an_account() -> None:
    before = {k: counted(k) for k in ("provider_unavailable", "ambiguous", "replayed")}
    provider = Scripted(
        ProviderPushback("503", WaitingReason.UNAVAILABLE, 0.01),
        AmbiguousProviderError("read timeout"),
        account(replayed=True),
    )
    [outcome] = run(provider)
    assert outcome.account is not None and outcome.orphans == 0
    assert provider.calls == 3
    assert counted("provider_unavailable") == before["provider_unavailable"] + 1
    assert counted("ambiguous") == before["ambiguous"] + 1
    assert counted("replayed") == before["replayed"] + 1


def test_an_account_after_an_unanswered_call_that_is_not_a_replay_is_an_orphan() -> None:
    provider = Scripted(AmbiguousProviderError("read timeout"), account(replayed=False))
    [outcome] = run(provider)
    assert outcome.orphans == 1


def test_only_a_refusal_or_exhausted_patience_fails_an_item() -> None:
    [refused] = run(Scripted(PermanentProviderError("refused (422)")))
    assert refused.reason == FailureReason.REFUSED
    [exhausted] = run(
        Scripted(ProviderPushback("503", WaitingReason.UNAVAILABLE, 0.01)), patience=0.05
    )
    assert exhausted.reason == FailureReason.UNAVAILABLE


def test_a_failure_is_ambiguous_only_after_a_call_that_went_unanswered() -> None:
    [refused] = run(Scripted(PermanentProviderError("refused (422)")))
    [paused] = run(
        Scripted(ProviderPushback("503", WaitingReason.UNAVAILABLE, 0.01)), patience=0.05
    )
    [unanswered] = run(Scripted(AmbiguousProviderError("read timeout")), patience=0.05)
    [then_refused] = run(
        Scripted(AmbiguousProviderError("read timeout"), PermanentProviderError("refused"))
    )
    assert (refused.ambiguous, paused.ambiguous) == (False, False)
    assert (unanswered.ambiguous, then_refused.ambiguous) == (True, True)


def test_a_pause_past_the_wait_budget_defers_the_slice() -> None:
    with pytest.raises(SliceDeferred) as raised:
        run(Scripted(ProviderPushback("503", WaitingReason.UNAVAILABLE, 5.0)), budget=1.0)
    assert raised.value.reason == WaitingReason.UNAVAILABLE


class CountedRate(AdaptiveRate):
    """The adaptive rate, counting the places calls took in it."""

    places = 0

    def record_sent(self, now: float) -> None:
        self.places += 1
        super().record_sent(now)


def test_slots_waiting_out_a_pause_take_no_place_in_the_adaptive_rate() -> None:
    """At the rate's start (10 calls a second), forty slots that each took a place before
    asking the pacer would need four seconds to learn that patience ran out."""
    provider = Scripted(ProviderPushback("503", WaitingReason.UNAVAILABLE, 0.05))
    rate = CountedRate()

    async def main() -> list[ItemOutcome]:
        paced = Patience(LocalPacer(0.0, 0.01), SliceRun(30.0), 0.2, 0.01, rate=rate)
        slots = list(range(40))
        outcomes = await create_accounts(
            TimedProvider(provider), JOB, slots, concurrency=40, attempts=1, patience=paced
        )
        return list(outcomes)

    outcomes = asyncio.run(main())
    assert [o.reason for o in outcomes] == [FailureReason.UNAVAILABLE] * 40
    # A place for each call sent, and at most one for a call queued before the pause began.
    assert rate.places <= provider.calls + 1 < 10
