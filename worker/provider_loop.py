"""One event loop per worker process on which every slice's provider calls run.

The loop's gate bounds the calls in flight across all the slices a process runs at once,
so while one slice records its outcomes, the others keep the provider busy. Providers that
push back are paced by one pacer per provider name, shared by every slice of the process
and, through Redis, by every process (worker/pacing.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis

from core.metrics import TimedProvider, set_rate_limit
from core.provider_spans import traced
from core.providers.base import Provider
from worker.adaptive import AdaptiveRate
from worker.fanout import ItemOutcome, Patience, create_accounts
from worker.gate import FairGate
from worker.pacing import LocalPacer, Pacer, RedisPacer
from worker.pushback import PushbackPolicy, SliceRun, WaitListener
from worker.shared_providers import ProviderFactory, SharedProviders

WAIT_SLICE_SECONDS = 0.5
REDIS_TIMEOUT_SECONDS = 2.0
REDIS_CONNECTIONS = 32
REDIS_POOL_WAIT_SECONDS = 10.0  # lanes queue for a connection; only a dead Redis times out

Outcomes = concurrent.futures.Future[list[ItemOutcome]]  # one slice's calls on the loop


class ProviderLoop:
    """A daemon thread running an asyncio loop, shared by a worker process's threads."""

    def __init__(self, concurrency: int, policy: PushbackPolicy | None = None) -> None:
        self.concurrency = concurrency
        self.policy = policy
        self._loop = asyncio.new_event_loop()
        self._gate = FairGate(concurrency)  # users take turns at it when it runs short
        self._pacers: dict[str, Pacer] = {}
        self._rates: dict[str, AdaptiveRate] = {}
        self._shared: list[SharedProviders] = []
        # Why-a-job-waits writes, in order, off the loop (worker/waiting_status.py).
        self.status_writer = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="tally-waiting"
        )
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tally-provider-loop", daemon=True
        )
        self._thread.start()

    def start(
        self,
        provider: Provider,
        job_id: uuid.UUID,
        indices: Sequence[int],
        attempts: int,
        listener: WaitListener | None = None,
        job_started: float | None = None,
        stop: Callable[[], bool] | None = None,
        *,
        user: Hashable = None,
        lanes: int = 0,
        kept_keys: Mapping[int, str] | None = None,
    ) -> Outcomes:
        """Start creating one slice's accounts on the shared loop; wait with `wait_all`.

        `job_started` (monotonic) is when the job began: the provider's unavailability
        counts against its patience from then at the earliest. The slice's outcome raises
        SliceDeferred when the provider asks it to wait past its budget. Once `stop()` is
        true no new call starts (create_accounts). At most `lanes` calls of the slice are
        in flight (0: the loop's bound), and the slices of different `user`s take turns at
        the shared bound. A slot in `kept_keys` asks with that key instead of its own.
        """
        return asyncio.run_coroutine_threadsafe(
            self._create(
                provider,
                job_id,
                indices,
                attempts,
                listener,
                job_started,
                stop,
                user,
                lanes or self.concurrency,
                kept_keys,
            ),
            self._loop,
        )

    async def _create(
        self,
        provider: Provider,
        job_id: uuid.UUID,
        indices: Sequence[int],
        attempts: int,
        listener: WaitListener | None,
        job_started: float | None,
        stop: Callable[[], bool] | None,
        user: Hashable,
        lanes: int,
        kept_keys: Mapping[int, str] | None,
    ) -> list[ItemOutcome]:
        try:
            return await create_accounts(
                TimedProvider(traced(provider)),
                job_id,
                indices,
                concurrency=min(lanes, self.concurrency),
                attempts=max(1, attempts),
                gate=self._gate.lane(user),
                patience=self._patience(provider.name, listener, job_started),
                stop=stop,
                kept_keys=kept_keys,
            )
        finally:
            await provider.aclose()

    def paces(self, name: str) -> bool:
        """Whether calls to this provider wait out its pushback (patience, pauses, rate)."""
        return self.policy is not None and name in self.policy.patient_providers

    def _patience(
        self, name: str, listener: WaitListener | None, job_started: float | None
    ) -> Patience | None:
        policy = self.policy
        if policy is None or name not in policy.patient_providers:
            return None
        return Patience(
            pacer=self._pacer(name, policy),
            run=SliceRun(policy.slice_wait, listener),
            seconds=policy.patience,
            backoff_cap=policy.backoff_cap,
            rate=None if policy.rate_limit else self._adaptive_rate(name),
            job_started=time.monotonic() if job_started is None else job_started,
        )

    def _adaptive_rate(self, name: str) -> AdaptiveRate:
        """The process's adaptive rate for a provider without a configured rate limit."""
        rate = self._rates.get(name)
        if rate is None:
            rate = self._rates[name] = AdaptiveRate()
        return rate

    def _pacer(self, name: str, policy: PushbackPolicy) -> Pacer:
        """The process's pacer of a provider, made on first use (on the loop's thread)."""
        pacer = self._pacers.get(name)
        if pacer is None:
            pacer = _make_pacer(name, policy)
            set_rate_limit(name, policy.rate_limit)
            self._pacers[name] = pacer
        return pacer

    def shared_providers(self, build: ProviderFactory) -> SharedProviders:
        """A factory lending each named provider, built once, to every slice of the process;
        the providers are closed with the loop."""
        shared = SharedProviders(build)
        self._shared.append(shared)
        return shared

    def close(self) -> None:
        """Stop the loop and its thread."""
        if self._pacers or self._shared:
            closing = asyncio.run_coroutine_threadsafe(self._close_resources(), self._loop)
            with contextlib.suppress(concurrent.futures.TimeoutError, OSError):
                closing.result(timeout=REDIS_TIMEOUT_SECONDS)
        self.status_writer.shutdown(wait=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    async def _close_resources(self) -> None:
        for shared in self._shared:
            await shared.aclose()
        for pacer in self._pacers.values():
            await pacer.aclose()


def _make_pacer(name: str, policy: PushbackPolicy) -> Pacer:
    if not policy.redis_url:
        return LocalPacer(policy.rate_limit, policy.backoff_cap)
    # Every lane of every slice asks the pacer: they queue for a few connections.
    pool: aioredis.BlockingConnectionPool[Any] = aioredis.BlockingConnectionPool.from_url(
        policy.redis_url,
        max_connections=REDIS_CONNECTIONS,
        timeout=REDIS_POOL_WAIT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
    )
    client = aioredis.Redis(connection_pool=pool)
    return RedisPacer(client, name, policy.rate_limit, policy.backoff_cap, policy.probe_timeout)


def wait_all(futures: Sequence[Outcomes]) -> Sequence[Outcomes]:
    """Wait until every slice started on the loop is done; return them, done.

    Short waits keep the calling thread interruptible by Dramatiq's time limit; an
    interrupt (time limit, shutdown) or failure of the caller stops every slice's calls.
    """
    try:
        for future in futures:
            while True:
                try:
                    future.exception(timeout=WAIT_SLICE_SECONDS)
                    break
                except concurrent.futures.TimeoutError:
                    continue
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    return futures
