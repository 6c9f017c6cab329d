"""The worker's shared provider loop: one bound on calls in flight for all its slices."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from core.providers.base import item_key
from tests.support.fake_provider import FakeProvider
from worker.fanout import ItemOutcome
from worker.provider_loop import ProviderLoop, wait_all

JOB = uuid.UUID("5b0c1f8e-8d4e-4d0f-9a53-3e1a4f0c2b77")


@pytest.fixture
def loop() -> Iterator[ProviderLoop]:
    shared = ProviderLoop(concurrency=6)
    yield shared
    shared.close()


def test_slices_running_at_once_share_one_bound(loop: ProviderLoop) -> None:
    provider = FakeProvider(pause=0.01)  # one provider object sees every call of both slices
    results: dict[int, int] = {}

    def run_slice(number: int) -> None:
        outcomes = outcomes_of(
            loop, provider, JOB, range(number * 100, number * 100 + 60), attempts=1
        )
        results[number] = sum(1 for o in outcomes if o.account is not None)

    threads = [threading.Thread(target=run_slice, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {0: 60, 1: 60, 2: 60}
    assert provider.peak == 6  # three slices of six lanes each, yet six calls at most


def test_outcomes_keep_the_slice_order_and_the_provider_is_closed(loop: ProviderLoop) -> None:
    provider = FakeProvider(permanent=frozenset({3}), transient={5: 1})
    outcomes = outcomes_of(loop, provider, JOB, [5, 4, 3], attempts=2)
    assert [o.item_index for o in outcomes] == [5, 4, 3]
    assert [o.account is not None for o in outcomes] == [True, True, False]
    assert provider.closed


def test_zero_attempts_still_calls_the_provider_once(loop: ProviderLoop) -> None:
    provider = FakeProvider(transient={0: 1})
    outcomes = outcomes_of(loop, provider, JOB, [0], attempts=0)
    assert outcomes[0].account is None
    assert provider.calls[item_key(JOB, 0)] == 1


def test_close_stops_the_loop_thread() -> None:
    shared = ProviderLoop(concurrency=2)
    shared.close()
    assert not any(t.name == "tally-provider-loop" and t.is_alive() for t in threading.enumerate())


def test_shared_providers_are_built_once_and_outlive_each_slice() -> None:
    built: list[FakeProvider] = []

    def build(name: str, settings: object) -> FakeProvider:
        built.append(FakeProvider())
        return built[-1]

    shared_loop = ProviderLoop(concurrency=4)
    factory = shared_loop.shared_providers(build)
    settings: Any = None
    for start in (0, 10):
        outcomes = outcomes_of(
            shared_loop, factory("fake", settings), JOB, range(start, start + 5), 1
        )
        assert all(o.account is not None for o in outcomes)
    assert len(built) == 1  # both slices called the one provider
    assert not built[0].closed  # a slice's end leaves its connections open
    shared_loop.close()
    assert built[0].closed  # closed with the loop


def outcomes_of(loop: ProviderLoop, *args: Any, **kwargs: Any) -> list[ItemOutcome]:
    """Start one slice's calls on the loop and wait for its outcomes."""
    return wait_all([loop.start(*args, **kwargs)])[0].result()
