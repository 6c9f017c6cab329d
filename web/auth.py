"""Bearer-token authentication, as a Starlette authentication backend."""

from __future__ import annotations

import asyncio
import time

from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from core.errors import Forbidden, Unauthorized
from core.tokens import hash_token
from core.users import Caller, authenticate

CACHE_SECONDS = 5.0  # a revoked token stops working within this time
CACHE_LIMIT = 10_000


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


class TokenBackend(AuthenticationBackend):
    """Looks tokens up in the database, remembering answers for a few seconds."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, Caller]] = {}
        # One database lookup per token at a time: requests arriving together share it.
        self._lookups: dict[str, asyncio.Task[Caller | None]] = {}

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        token = _bearer_token(conn.headers.get("authorization", ""))
        if token is None:
            return None
        caller = await self._lookup(conn, token)
        if caller is None:
            return None
        scopes = ["authenticated", "admin"] if caller.is_admin else ["authenticated"]
        return AuthCredentials(scopes), TokenUser(caller)

    async def _lookup(self, conn: HTTPConnection, token: str) -> Caller | None:
        key = hash_token(token)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
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
