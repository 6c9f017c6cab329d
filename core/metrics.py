"""Measurements taken inside a process: provider latency (worker), outbox apply (reconcile).

They live in prometheus-client's default registry of the process that measures them. When
PROMETHEUS_MULTIPROC_DIR names a folder shared by the processes of one host (set it in the
environment before they start), prometheus-client writes them there and the web process's
/metrics includes them. Everything that can be read from the database (jobs, items,
outbox backlog, apply lag) is instead computed at scrape time by web/metrics.py.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram

from core.errors import (
    AmbiguousProviderError,
    PermanentProviderError,
    ProviderPushback,
    TransientProviderError,
)
from core.providers.base import CreatedAccount, Provider
from core.vocabulary import WaitingReason

PROVIDER_LATENCY = Histogram(
    "tally_provider_call_seconds",
    "Time of one provider call (one attempt), by provider and outcome.",
    ["provider", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
PROVIDER_REQUESTS = Counter(
    "tally_provider_requests",
    "Provider calls by what they answered: created, replayed (an account created earlier), "
    f"refused, {WaitingReason.RATE_LIMITED}, {WaitingReason.UNAVAILABLE}, ambiguous (no answer), "
    "transient.",
    ["provider", "outcome"],
)
PROVIDER_PAUSES = Counter(
    "tally_provider_pauses",
    "Pauses of every call to a provider after its pushback, by reason.",
    ["provider", "reason"],
)
PROVIDER_RATE_LIMIT = Gauge(
    "tally_provider_rate_limit",
    "Requests per second the deployment allows a provider (TALLY_PROVIDER_RATE_LIMIT); "
    "0 = none. The current rate is rate(tally_provider_requests_total[1m]).",
    ["provider"],
    multiprocess_mode="max",
)
APPLY_BATCH_ROWS = Histogram(
    "tally_apply_batch_rows",
    "Outbox rows applied to user_stats by one apply transaction.",
    buckets=(0, 1, 10, 100, 500, 1000, 2500, 5000, 10000),
)
APPLY_BATCH_SECONDS = Histogram(
    "tally_apply_batch_seconds",
    "Duration of one outbox apply transaction.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


class TimedProvider:
    """A provider that records the latency and outcome of every call it passes on."""

    def __init__(self, provider: Provider) -> None:
        self._provider = provider
        self.name = provider.name

    async def create_account(self, idempotency_key: str) -> CreatedAccount:
        """Call the wrapped provider and record how long it took."""
        started = time.perf_counter()
        outcome, answer = "error", "error"
        try:
            account = await self._provider.create_account(idempotency_key)
            outcome, answer = "ok", "replayed" if account.replayed else "created"
            return account
        except ProviderPushback as exc:
            outcome, answer = "transient", exc.reason
            raise
        except AmbiguousProviderError:
            outcome, answer = "transient", "ambiguous"
            raise
        except TransientProviderError:
            outcome, answer = "transient", "transient"
            raise
        except PermanentProviderError:
            outcome, answer = "permanent", "refused"
            raise
        finally:
            PROVIDER_LATENCY.labels(self.name, outcome).observe(time.perf_counter() - started)
            PROVIDER_REQUESTS.labels(self.name, answer).inc()

    async def aclose(self) -> None:
        """Close the wrapped provider."""
        await self._provider.aclose()


def observe_pause(provider: str, reason: str) -> None:
    """Count one pause of a provider's callers after its pushback."""
    PROVIDER_PAUSES.labels(provider, reason).inc()


def set_rate_limit(provider: str, rate: float) -> None:
    """Expose the rate limit a provider runs under."""
    PROVIDER_RATE_LIMIT.labels(provider).set(rate)


def observe_apply(rows: int, seconds: float) -> None:
    """Record one outbox apply transaction."""
    APPLY_BATCH_ROWS.observe(rows)
    APPLY_BATCH_SECONDS.observe(seconds)
