"""The http provider spreads its calls over one pool per 32 calls in flight, eight at most."""

from __future__ import annotations

import asyncio

from core.providers.http import HttpProvider, client_count


def test_few_calls_in_flight_share_one_warm_pool_and_many_are_spread() -> None:
    assert [client_count(n) for n in (1, 8, 32, 33, 256, 10_000)] == [1, 1, 1, 2, 8, 8]


def test_the_provider_opens_as_many_pools_as_its_calls_need() -> None:
    provider = HttpProvider("http://127.0.0.1:9/accounts", 1.0, concurrency=8)
    try:
        assert len(provider._clients) == 1
    finally:
        asyncio.run(provider.aclose())
