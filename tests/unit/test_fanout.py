"""The fan-out: retries transient errors within limits, and keeps concurrency bounded."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from core.providers.base import item_key
from tests.support.fake_provider import FakeProvider
from worker import fanout
from worker.fanout import ItemOutcome, create_accounts

JOB = uuid.UUID("0d7bd1a4-2f7e-4f55-8b53-9a2c6f1e7c10")


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fanout, "BASE_BACKOFF_SECONDS", 0.0)


def run(
    provider: FakeProvider, indices: list[int], concurrency: int = 8, attempts: int = 3
) -> list[ItemOutcome]:
    return asyncio.run(
        create_accounts(provider, JOB, indices, concurrency=concurrency, attempts=attempts)
    )


def test_transient_errors_are_retried_until_success_within_attempts() -> None:
    provider = FakeProvider(transient={0: 1, 1: 2})
    results = run(provider, [0, 1, 2], attempts=3)
    assert [r.account is not None for r in results] == [True, True, True]
    assert provider.calls[item_key(JOB, 0)] == 2
    assert provider.calls[item_key(JOB, 1)] == 3
    assert provider.calls[item_key(JOB, 2)] == 1


def test_transient_errors_beyond_attempts_count_as_one_failure() -> None:
    provider = FakeProvider(transient={4: 3, 5: 100})
    results = run(provider, [4, 5], attempts=3)
    assert all(r.account is None for r in results)
    assert all(r.error is not None and "3 attempts" in r.error for r in results)
    assert provider.calls[item_key(JOB, 4)] == 3
    assert provider.calls[item_key(JOB, 5)] == 3


def test_permanent_errors_are_not_retried() -> None:
    provider = FakeProvider(permanent=frozenset({3}))
    results = run(provider, [2, 3], attempts=5)
    assert results[0].account is not None
    assert results[1].account is None and results[1].error == "refused"
    assert provider.calls[item_key(JOB, 3)] == 1


def test_outcomes_keep_the_order_of_indices_and_use_the_slot_key() -> None:
    indices = [9, 3, 7, 1]
    provider = FakeProvider(permanent=frozenset({7}))
    results = run(provider, indices)
    assert [r.item_index for r in results] == indices
    assert [r.account.external_id if r.account else None for r in results] == [
        "ext-9",
        "ext-3",
        None,
        "ext-1",
    ]
    assert set(provider.calls) == {f"{JOB}:{i}" for i in indices}


@pytest.mark.parametrize("concurrency", [1, 4, 32])
def test_concurrency_is_bounded_and_reached(concurrency: int) -> None:
    provider = FakeProvider(pause=0.001, transient={i: 1 for i in range(0, 200, 3)})
    results = run(provider, list(range(200)), concurrency=concurrency)
    assert all(r.account is not None for r in results)
    assert provider.peak == concurrency


def test_retries_hold_no_extra_slot_beyond_the_bound() -> None:
    provider = FakeProvider(pause=0.001, transient={i: 2 for i in range(50)})
    run(provider, list(range(50)), concurrency=5, attempts=3)
    assert provider.peak <= 5


def test_no_call_starts_once_stop_is_true() -> None:
    provider = FakeProvider()
    started: list[int] = []

    def stop() -> bool:
        started.append(len(provider.calls))
        return len(provider.calls) >= 5

    results = asyncio.run(
        create_accounts(provider, JOB, list(range(100)), concurrency=1, attempts=1, stop=stop)
    )
    assert [r.item_index for r in results] == [0, 1, 2, 3, 4]
    assert len(provider.calls) == 5


def test_stop_is_checked_again_after_waiting_for_the_gate() -> None:
    provider = FakeProvider()

    async def main() -> list[ItemOutcome]:
        gate = asyncio.Semaphore(1)
        await gate.acquire()  # another slice holds the gate while the cancel arrives
        stopped = asyncio.Event()
        work = asyncio.ensure_future(
            create_accounts(
                provider, JOB, [0, 1], concurrency=2, attempts=1, gate=gate, stop=stopped.is_set
            )
        )
        await asyncio.sleep(0)
        stopped.set()
        gate.release()
        return await work

    assert asyncio.run(main()) == []
    assert provider.calls == {}


def test_slots_with_kept_keys_ask_with_them_and_the_others_with_their_own() -> None:
    provider = FakeProvider()
    kept = {1: "parent:7", 3: "parent:9"}
    results = asyncio.run(
        create_accounts(provider, JOB, [0, 1, 2, 3], concurrency=2, attempts=1, kept_keys=kept)
    )
    assert all(r.account is not None for r in results)
    assert set(provider.calls) == {item_key(JOB, 0), "parent:7", item_key(JOB, 2), "parent:9"}


def test_only_failures_after_unanswered_calls_are_ambiguous() -> None:
    provider = FakeProvider(transient={0: 100, 1: 1}, permanent=frozenset({2}))
    exhausted, answered, refused = run(provider, [0, 1, 2], attempts=2)
    assert exhausted.account is None and exhausted.ambiguous
    assert answered.account is not None and not answered.ambiguous
    assert refused.account is None and not refused.ambiguous
