"""The HTTP provider: POSTs to an operator-configured URL with an Idempotency-Key.

Each answer is sorted into what the worker does with it: an account (`2xx`), a permanent
refusal (other `4xx`), pushback (`429`, `5xx`, the provider unreachable: wait, then retry
the same key) or an ambiguous outcome (the request went out but no answer came: the account
may exist, so retry the same key until the provider answers).
"""

from __future__ import annotations

import email.utils
import functools
import itertools
import logging
import ssl
import time
from typing import Any

import httpx

from core.errors import (
    AmbiguousProviderError,
    PermanentProviderError,
    ProviderPushback,
    ProviderUnavailable,
)
from core.providers.base import CreatedAccount
from core.vocabulary import WaitingReason

# One line per request at INFO would drown a worker's log.
logging.getLogger("httpx").setLevel(logging.WARNING)

# Answers that say "not now" without refusing the request.
RETRYABLE_STATUS = frozenset({408, 425, 429})
# Failures that happen before the request reaches the provider: nothing can exist.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# httpx's pool slows down with its number of connections, so calls are spread over a few
# small pools, one per this many calls in flight; below it, one pool serves best (its
# connections stay warm).
CALLS_PER_CLIENT = 32
MAX_CLIENTS = 8


class HttpProvider:
    """Creates accounts through the operator's own provisioning API."""

    name = "http"

    def __init__(self, url: str, timeout: float, token: str = "", concurrency: int = 256) -> None:
        if not url:
            raise ProviderUnavailable("TALLY_PROVIDER_URL is not set")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._url = url
        # The worker bounds calls in flight itself (`concurrency` at most); the pools must
        # not add a second bound.
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
        self._clients = [
            httpx.AsyncClient(
                timeout=timeout, headers=headers, limits=limits, verify=_tls_context()
            )
            for _ in range(client_count(concurrency))
        ]
        self._turn = itertools.cycle(self._clients)

    async def create_account(self, idempotency_key: str) -> CreatedAccount:
        """POST one creation request; sort the answer into account, refusal or pushback."""
        try:
            response = await next(self._turn).post(
                self._url,
                json={"idempotency_key": idempotency_key},
                headers={"Idempotency-Key": idempotency_key},
            )
        except NOT_SENT as exc:
            raise ProviderPushback(
                f"http provider: {type(exc).__name__}", WaitingReason.UNAVAILABLE
            ) from exc
        except httpx.TransportError as exc:
            raise AmbiguousProviderError(f"http provider: {type(exc).__name__}") from exc
        status = response.status_code
        if status >= 500 or status in RETRYABLE_STATUS:
            reason = WaitingReason.RATE_LIMITED if status == 429 else WaitingReason.UNAVAILABLE
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise ProviderPushback(f"http provider answered {status}", reason, retry_after)
        if status >= 400:
            raise PermanentProviderError(f"refused ({status})")
        replayed = response.headers.get("idempotent-replayed", "").lower() == "true"
        try:
            body = response.json()
        except ValueError as exc:
            # A success whose body cannot be read: the account exists; ask again for it.
            raise AmbiguousProviderError(f"http provider answered {status} without JSON") from exc
        return _parse_account(body, replayed)

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        for client in self._clients:
            await client.aclose()


def client_count(concurrency: int) -> int:
    """How many pools carry `concurrency` calls in flight: one per CALLS_PER_CLIENT."""
    return max(1, min(MAX_CLIENTS, -(-concurrency // CALLS_PER_CLIENT)))


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context per process: building one costs milliseconds, and clients are many."""
    return ssl.create_default_context()


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _parse_account(body: Any, replayed: bool) -> CreatedAccount:
    try:
        return CreatedAccount(
            external_id=str(body["external_id"]),
            username=str(body["username"]),
            secret=str(body["secret"]),
            metadata=dict(body.get("metadata") or {}),
            replayed=replayed,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentProviderError("http provider answered an unreadable body") from exc
