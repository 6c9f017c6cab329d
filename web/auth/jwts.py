"""Verifying the frontend's JWTs: HS256 with the shared secret, or keys from a JWKS URL."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from core.settings import Settings
from web.auth.jwks import SigningKeys

SHARED_SECRET_ALGORITHM = "HS256"
JWKS_ALGORITHMS = frozenset({"RS256", "ES256"})
LEEWAY_SECONDS = 5  # clock skew allowed on exp and nbf
REQUIRED_CLAIMS = ["exp", "sub"]
MAX_NAME_LENGTH = 200  # of the name a provisioned user gets from the email claim


@dataclass(frozen=True)
class Identity:
    """Who a valid JWT speaks for, and until when (seconds since the epoch)."""

    user_id: uuid.UUID
    name: str
    expires_at: float


def looks_like_jwt(token: str) -> bool:
    """Whether a bearer token has a JWT's three dot-separated parts."""
    return token.count(".") == 2


class JwtVerifier:
    """Checks a JWT's signature, algorithm, audience, issuer, times and subject."""

    def __init__(self, settings: Settings) -> None:
        self._secret = settings.jwt_secret
        self._keys = SigningKeys(settings.jwks_url) if settings.jwks_url else None
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer or None

    @property
    def enabled(self) -> bool:
        """Whether any JWT can be valid here (a secret or a JWKS URL is configured)."""
        return bool(self._secret) or self._keys is not None

    async def verify(self, token: str) -> Identity | None:
        """The identity of a valid JWT, or None for any invalid one."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        key = await self._key_for(header)
        if key is None:
            return None
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[header["alg"]],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError:
            return None
        return _identity(claims)

    async def _key_for(self, header: dict[str, Any]) -> jwt.PyJWK | str | None:
        algorithm = header.get("alg")
        if algorithm == SHARED_SECRET_ALGORITHM and self._secret:
            return self._secret
        if algorithm in JWKS_ALGORITHMS and self._keys is not None:
            kid = header.get("kid")
            return await self._keys.key(kid) if isinstance(kid, str) else None
        return None  # "none", or an algorithm this server is not configured for


def _identity(claims: dict[str, Any]) -> Identity | None:
    """The subject as a user id, in the canonical UUID spelling only."""
    subject = claims.get("sub")
    try:
        user_id = uuid.UUID(subject) if isinstance(subject, str) else None
    except ValueError:
        return None
    if user_id is None or str(user_id) != subject:
        return None
    email = claims.get("email")
    name = email.replace("\x00", "")[:MAX_NAME_LENGTH] if isinstance(email, str) else ""
    exp = claims.get("exp")
    expires_at = float(exp) if isinstance(exp, int | float) else time.time()
    return Identity(user_id, name, expires_at)
