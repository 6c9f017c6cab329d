"""The sandbox provider: deterministic per key, failing at the configured rates."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest

from core.errors import PermanentProviderError, TransientProviderError
from core.providers.base import CreatedAccount, item_key
from core.providers.sandbox import SandboxProvider
from core.settings import SandboxOptions

SAMPLE = 10_000
JOB = uuid.UUID("6a1f1d5e-8a8e-4c53-9d7b-1b8f2f1c0a11")


async def _outcomes(provider: SandboxProvider, keys: list[str]) -> list[CreatedAccount | str]:
    async def one(key: str) -> CreatedAccount | str:
        try:
            return await provider.create_account(key)
        except PermanentProviderError:
            return "permanent"
        except TransientProviderError:
            return "transient"

    return list(await asyncio.gather(*(one(k) for k in keys)))


def outcomes(options: SandboxOptions, keys: list[str], seed: int = 1) -> list[CreatedAccount | str]:
    return asyncio.run(_outcomes(SandboxProvider(options, random.Random(seed)), keys))


def keys(count: int = SAMPLE) -> list[str]:
    return [item_key(JOB, i) for i in range(count)]


def test_same_key_always_yields_the_same_account() -> None:
    options = SandboxOptions()
    first, second = outcomes(options, keys(200)), outcomes(options, keys(200), seed=2)
    assert first == second
    assert all(isinstance(o, CreatedAccount) for o in first)


def test_different_keys_yield_different_accounts() -> None:
    accounts = [o for o in outcomes(SandboxOptions(), keys()) if isinstance(o, CreatedAccount)]
    assert len({a.external_id for a in accounts}) == SAMPLE
    assert len({a.username for a in accounts}) == SAMPLE
    assert len({a.secret for a in accounts}) == SAMPLE


def test_account_fields_do_not_reveal_the_secret() -> None:
    account = outcomes(SandboxOptions(), ["job:1"])[0]
    assert isinstance(account, CreatedAccount)
    assert account.secret not in account.external_id + account.username
    assert account.secret not in repr(account.metadata)


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5])
def test_failure_rate_is_met_within_tolerance(rate: float) -> None:
    results = outcomes(SandboxOptions(failure_rate=rate), keys())
    failed = sum(1 for r in results if r == "permanent") / SAMPLE
    # Five standard deviations of a binomial over 10k keys is at most 0.025.
    assert abs(failed - rate) < 0.025


def test_failures_are_deterministic_per_key() -> None:
    options = SandboxOptions(failure_rate=0.3)
    first = [r == "permanent" for r in outcomes(options, keys(2000), seed=1)]
    second = [r == "permanent" for r in outcomes(options, keys(2000), seed=99)]
    assert first == second
    assert any(first) and not all(first)


def test_rate_zero_never_fails_and_rate_one_always_fails() -> None:
    assert "permanent" not in outcomes(SandboxOptions(failure_rate=0.0), keys(1000))
    assert set(outcomes(SandboxOptions(failure_rate=1.0), keys(1000))) == {"permanent"}


def test_transient_rate_is_met_within_tolerance() -> None:
    results = outcomes(SandboxOptions(transient_rate=0.1), keys(), seed=7)
    transient = sum(1 for r in results if r == "transient") / SAMPLE
    assert abs(transient - 0.1) < 0.025
    assert "permanent" not in results


def test_failing_keys_are_a_subset_as_the_rate_grows() -> None:
    low = outcomes(SandboxOptions(failure_rate=0.1), keys(3000))
    high = outcomes(SandboxOptions(failure_rate=0.4), keys(3000))
    failing_low = {i for i, r in enumerate(low) if r == "permanent"}
    failing_high = {i for i, r in enumerate(high) if r == "permanent"}
    assert failing_low < failing_high
