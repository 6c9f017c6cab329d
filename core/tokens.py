"""API tokens: random, shown once, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import re
import secrets

TOKEN_PREFIX = "tly_"
TOKEN_BYTES = 32
# What new_token() returns: the prefix and 43 url-safe base64 characters (32 random bytes).
TOKEN_SHAPE = re.compile(r"tly_[A-Za-z0-9_-]{43}")


def new_token() -> str:
    """Return a fresh random API token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def well_formed(token: str) -> bool:
    """Whether a token has the shape of one tally issues (checked before any lookup)."""
    return TOKEN_SHAPE.fullmatch(token) is not None


def hash_token(token: str) -> str:
    """Return the hex SHA-256 of a token, the only form the database keeps."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
