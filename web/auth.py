"""Bearer-token authentication, as a Starlette authentication backend."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
)
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.responses import Response

from core.errors import Forbidden, TallyError, TooManyRequests, Unauthorized
from core.tokens import hash_token, well_formed
from core.users import Caller, authenticate
from web.auth_failures import FailureLimiter
from web.errors import database_down, database_unreachable, domain_error_response

CACHE_SECONDS = 5.0  # a revoked token stops working within this time
CACHE_LIMIT = 10_000
API_PREFIX = "/api/"
# A refused (429) request is answered after this pause: a client retrying at once is slowed
# to one attempt a second per connection, so a flood costs the process almost nothing.
REFUSAL_PAUSE_SECONDS = 1.0


class TokenUser(BaseUser):
    """The Starlette user for a request that presented a valid token."""

    def __init__(self, caller: Caller) -> None:
        self.caller = caller

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.caller.name

    @property
    def identity(self) -> str:
        return str(self.caller.user_id)


class AuthenticationFailed(AuthenticationError):
    """A domain error met while authenticating, answered by `answer_failure`."""

    def __init__(self, error: TallyError) -> None:
        super().__init__(str(error))
        self.error = error


def answer_failure(conn: HTTPConnection, exc: Exception) -> Response:
    """AuthenticationMiddleware's on_error: the domain error's JSON answer."""
    assert isinstance(exc, AuthenticationFailed)
    return domain_error_response(exc.error)


class TokenBackend(AuthenticationBackend):
    """Looks tokens up in the database, remembering answers for a few seconds.

    A malformed token is refused without the database; once a client address has failed
    `failures_per_minute` times in 60 s, its tokens are no longer looked up (429) unless
    this process has seen them valid in the last few seconds.
    """

    def __init__(self, failures_per_minute: int = 20) -> None:
        self._cache: dict[str, tuple[float, Caller]] = {}
        # One database lookup per token at a time: requests arriving together share it.
        self._lookups: dict[str, asyncio.Task[Caller | None]] = {}
        self._failures = FailureLimiter(failures_per_minute)

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        token = _bearer_token(conn.headers.get("authorization", ""))
        if token is None or not conn.scope["path"].startswith(API_PREFIX):
            return None  # the public routes (dashboard, docs, health, metrics) take no token
        caller = self._cached(token) or await self._checked(conn, token)
        if caller is None:
            return None
        scopes = ["authenticated", "admin"] if caller.is_admin else ["authenticated"]
        return AuthCredentials(scopes), TokenUser(caller)

    def _cached(self, token: str) -> Caller | None:
        cached = self._cache.get(hash_token(token))
        return cached[1] if cached is not None and cached[0] > time.monotonic() else None

    async def _checked(self, conn: HTTPConnection, token: str) -> Caller | None:
        client = conn.client.host if conn.client else ""
        wait = self._failures.blocked_for(client)
        if wait is not None:
            await asyncio.sleep(REFUSAL_PAUSE_SECONDS)
            raise AuthenticationFailed(TooManyRequests("too many failed authentications", wait))
        caller = await self._lookup(conn, token) if well_formed(token) else None
        if caller is None:
            self._failures.failed(client)
        return caller

    async def _lookup(self, conn: HTTPConnection, token: str) -> Caller | None:
        key = hash_token(token)
        lookup = self._lookups.get(key)
        if lookup is None:
            lookup = asyncio.ensure_future(self._load(conn, key, token))
            self._lookups[key] = lookup
            lookup.add_done_callback(lambda _: self._lookups.pop(key, None))
        return await asyncio.shield(lookup)

    async def _load(self, conn: HTTPConnection, key: str, token: str) -> Caller | None:
        try:
            caller = await run_in_threadpool(authenticate, conn.app.state.database.sessions, token)
        except Unauthorized:
            return None
        except (DBAPIError, PoolTimeout) as exc:
            if database_unreachable(exc):
                raise AuthenticationFailed(database_down()) from exc
            raise
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = (time.monotonic() + CACHE_SECONDS, caller)
        return caller


def _bearer_token(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def caller_of(conn: HTTPConnection) -> Caller:
    """Return the authenticated caller, or raise Unauthorized."""
    user = conn.user
    if not isinstance(user, TokenUser):
        raise Unauthorized("a valid bearer token is required")
    return user.caller


def admin_of(conn: HTTPConnection) -> Caller:
    """Return the caller if they are an admin, or raise."""
    caller = caller_of(conn)
    if not caller.is_admin:
        raise Forbidden("an admin token is required")
    return caller
