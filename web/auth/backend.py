"""Bearer authentication (API tokens, the frontend's JWTs, the service key), as a Starlette
authentication backend."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import time
from collections.abc import Callable

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

from core.database import SessionFactory
from core.errors import Forbidden, TallyError, TooManyRequests, Unauthorized, Unavailable
from core.settings import Settings
from core.tokens import hash_token, well_formed
from core.users import Caller, authenticate, provision
from web.auth.failures import FailureLimiter, RefusedTokens
from web.auth.jwts import Identity, JwtVerifier, looks_like_jwt
from web.contract.errors import database_down, database_unreachable, domain_error_response

# A revoked token stops working within REVOCATION_SECONDS: a process remembers a valid token
# for one second less, the margin for a request authenticated just before the memory ends to
# be answered (a slow page, a busy process) before the promise is past.
REVOCATION_SECONDS = 5.0
CACHE_SECONDS = REVOCATION_SECONDS - 1.0
CACHE_LIMIT = 10_000
# Tokens found invalid are refused from memory for this long: a flood repeating them costs
# no lookup. A token is random, so one that was invalid stays so (none is created later).
REFUSED_SECONDS = 60.0
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


class ServiceUser(BaseUser):
    """The operator's service key: admin endpoints only, acting for no user."""

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return "service"

    @property
    def identity(self) -> str:
        return "service"


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
    """Looks tokens up in the database and verifies JWTs, remembering answers a few seconds.

    A malformed token, or one this process found invalid in the last minute, is refused
    without the database. A valid token or JWT is always served, whatever else its client
    address sent: only failures are limited. Once an address has failed
    `failures_per_minute` times in 60 s, each further failure is answered 429 after a
    pause, so a flood from it is slowed to one attempt a second per connection while a
    real user sharing the address keeps working. The first valid JWT of a new subject
    provisions the user.
    """

    def __init__(
        self,
        failures_per_minute: int = 20,
        settings: Settings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock  # what the remembered tokens' ages are read on (tests move it)
        self._cache: dict[str, tuple[float, Caller]] = {}
        self._refused = RefusedTokens(CACHE_LIMIT, REFUSED_SECONDS)
        # One database lookup per token at a time: requests arriving together share it.
        self._lookups: dict[str, asyncio.Task[Caller | None]] = {}
        self._failures = FailureLimiter(failures_per_minute)
        settings = settings or Settings()
        self._jwts = JwtVerifier(settings)
        self._signup_credits = settings.signup_credits
        self._service_key = _digest(settings.service_key) if settings.service_key else None

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        token = _bearer_token(conn.headers.get("authorization", ""))
        if token is None or not conn.scope["path"].startswith(API_PREFIX):
            return None  # the public routes (dashboard, docs, health, metrics) take no token
        if self._service_key is not None and hmac.compare_digest(_digest(token), self._service_key):
            return AuthCredentials(["admin"]), ServiceUser()
        caller = self._cached(token) or await self._checked(conn, token)
        if caller is None:
            return None
        scopes = ["authenticated", "admin"] if caller.is_admin else ["authenticated"]
        return AuthCredentials(scopes), TokenUser(caller)

    def forget(self, token_hash: str) -> None:
        """Drop a revoked token from this process's memory at once."""
        self._cache.pop(token_hash, None)

    def _cached(self, token: str) -> Caller | None:
        cached = self._cache.get(hash_token(token))
        return cached[1] if cached is not None and cached[0] > self.clock() else None

    async def _checked(self, conn: HTTPConnection, token: str) -> Caller | None:
        key = hash_token(token)
        caller = None
        if not self._refused.holds(key):
            try:
                caller = await self._valid(conn, token)
            except Unavailable as exc:  # the JWKS cannot be fetched
                raise AuthenticationFailed(exc) from exc
        if caller is not None:
            return caller
        self._refused.add(key)
        client = conn.client.host if conn.client else ""
        wait = self._failures.blocked_for(client)
        self._failures.failed(client)
        if wait is not None:
            await asyncio.sleep(REFUSAL_PAUSE_SECONDS)
            raise AuthenticationFailed(TooManyRequests("too many failed authentications", wait))
        return None

    async def _valid(self, conn: HTTPConnection, token: str) -> Caller | None:
        sessions = conn.app.state.database.sessions
        if well_formed(token):
            load = functools.partial(authenticate, sessions, token)
            return await self._lookup(token, load, self.clock() + CACHE_SECONDS)
        if self._jwts.enabled and looks_like_jwt(token):
            identity = await self._jwts.verify(token)
            if identity is None:
                return None
            return await self._lookup(
                token, self._provisioning(sessions, identity), _until(identity, self.clock())
            )
        return None

    def _provisioning(self, sessions: SessionFactory, identity: Identity) -> Callable[[], Caller]:
        return functools.partial(
            provision, sessions, identity.user_id, identity.name, self._signup_credits
        )

    async def _lookup(self, token: str, load: Callable[[], Caller], until: float) -> Caller | None:
        key = hash_token(token)
        lookup = self._lookups.get(key)
        if lookup is None:
            lookup = asyncio.ensure_future(self._load(key, load, until))
            self._lookups[key] = lookup
            lookup.add_done_callback(lambda _: self._lookups.pop(key, None))
        return await asyncio.shield(lookup)

    async def _load(self, key: str, load: Callable[[], Caller], until: float) -> Caller | None:
        try:
            caller = await run_in_threadpool(load)
        except Unauthorized:
            return None
        except (DBAPIError, PoolTimeout) as exc:
            if database_unreachable(exc):
                raise AuthenticationFailed(database_down()) from exc
            raise
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = (until, caller)
        return caller


def _until(identity: Identity, now: float) -> float:
    """When this process stops trusting a JWT it verified: soon, and never past exp."""
    left = min(CACHE_SECONDS, identity.expires_at - time.time())
    return now + left


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


def _bearer_token(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def caller_of(conn: HTTPConnection) -> Caller:
    """Return the authenticated caller, or raise Unauthorized."""
    user = conn.user
    if isinstance(user, ServiceUser):
        raise Forbidden("the service key acts for no user; use a user's token or JWT")
    if not isinstance(user, TokenUser):
        raise Unauthorized("a valid bearer token is required")
    return user.caller


def admin_of(conn: HTTPConnection) -> None:
    """Return if the caller is the service key or an admin, or raise."""
    if isinstance(conn.user, ServiceUser):
        return
    if not caller_of(conn).is_admin:
        raise Forbidden("an admin token or the service key is required")


def is_operator(conn: HTTPConnection) -> bool:
    """Whether the caller may act on any user (the service key or an admin)."""
    user = conn.user
    return isinstance(user, ServiceUser) or (isinstance(user, TokenUser) and user.caller.is_admin)
