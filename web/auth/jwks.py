"""The public keys of asymmetric JWTs, from the sign-in service's JWKS URL.

Keys are fetched in a worker thread, never on the event loop, with a bounded timeout; requests
that need a fetch at the same time share one. The set is kept for `max_age` seconds and
fetched again when a token names a key id it lacks (key rotation), at most once per
`min_refresh` seconds, so tokens with made-up key ids cannot make tally hammer the endpoint.
While the endpoint is unreachable, the keys already known keep working.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

import jwt
from jwt import PyJWK, PyJWKClient
from starlette.concurrency import run_in_threadpool

from core.errors import Unavailable

logger = logging.getLogger(__name__)

FETCH_TIMEOUT_SECONDS = 3.0
MAX_AGE_SECONDS = 300.0
MIN_REFRESH_SECONDS = 1.0
RETRY_AFTER_SECONDS = 5


class SigningKeys:
    """The JWKS's signing keys by key id, cached and refreshed on an unknown id."""

    def __init__(
        self,
        url: str,
        timeout: float = FETCH_TIMEOUT_SECONDS,
        max_age: float = MAX_AGE_SECONDS,
        min_refresh: float = MIN_REFRESH_SECONDS,
    ) -> None:
        self._client = PyJWKClient(url, cache_jwk_set=False, timeout=timeout)
        self._max_age = max_age
        self._min_refresh = min_refresh
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at = -math.inf  # the last fetch that succeeded
        self._tried_at = -math.inf  # the last fetch, whatever its outcome
        self._fetch: asyncio.Future[None] | None = None

    async def key(self, kid: str) -> PyJWK | None:
        """The key with this id, or None when the JWKS has none; Unavailable if unreachable."""
        known = self._keys.get(kid)
        if known is not None and time.monotonic() - self._fetched_at < self._max_age:
            return known
        if self._fetch is None and time.monotonic() - self._tried_at < self._min_refresh:
            return self._known_or_unavailable(known)
        try:
            await self._refreshed()
        except jwt.PyJWTError as exc:
            logger.warning("the JWKS could not be fetched: %s", exc)
            return self._known_or_unavailable(known)
        return self._keys.get(kid)

    def _known_or_unavailable(self, known: PyJWK | None) -> PyJWK | None:
        """While the endpoint fails, the keys known keep working; the others cannot be checked."""
        if known is None and self._fetched_at < self._tried_at:
            raise Unavailable("the sign-in keys cannot be fetched", RETRY_AFTER_SECONDS)
        return known

    async def _refreshed(self) -> None:
        if self._fetch is None:
            self._tried_at = time.monotonic()
            self._fetch = asyncio.ensure_future(run_in_threadpool(self._load))
            self._fetch.add_done_callback(self._fetched)
        await asyncio.shield(self._fetch)

    def _fetched(self, fetch: asyncio.Future[None]) -> None:
        self._fetch = None
        if not fetch.cancelled():
            fetch.exception()  # retrieved: waiters re-raise it themselves

    def _load(self) -> None:
        """Fetch the set (in a worker thread) and replace the known keys."""
        keys = self._client.get_signing_keys(refresh=True)
        self._keys = {key.key_id: key for key in keys if key.key_id}
        self._fetched_at = time.monotonic()
