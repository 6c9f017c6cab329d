"""Opaque, tamper-evident list cursors: a position in one user's list, signed.

A cursor carries the list's name, the user it was issued to and the sort key of the last
row served, as base64url JSON, followed by an HMAC-SHA256 tag (keyed from the deployment's
Fernet key). A cursor that was altered, cut short, made up, or issued for another list or
user is refused with InvalidInput (a 400), before any query runs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence

from core.errors import InvalidInput

TAG_BYTES = 16
MAX_CURSOR_LENGTH = 512
# The shape of every cursor (base64url payload, a dot, base64url tag); only the service's
# own signature makes one valid.
CURSOR_PATTERN = "^[A-Za-z0-9_-]+[.][A-Za-z0-9_-]+$"
Position = tuple[str | int, ...]


class CursorBox:
    """Seals and opens the cursors of the paged lists."""

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), b"tally list cursors v1", hashlib.sha256).digest()

    def seal(self, listing: str, user_id: uuid.UUID, position: Sequence[str | int]) -> str:
        """The cursor that resumes `listing` of `user_id` after `position`."""
        payload = json.dumps([listing, str(user_id), *position], separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._tag(payload))}"

    def open(
        self, cursor: str, listing: str, user_id: uuid.UUID, shape: Sequence[type]
    ) -> Position:
        """The position a cursor of `listing` carries, or InvalidInput."""
        payload = self._verified(cursor)
        try:
            found = json.loads(payload)
        except (UnicodeDecodeError, ValueError):
            found = None
        if not isinstance(found, list) or len(found) != 2 + len(shape):
            raise _invalid("cursor is malformed")
        if found[:2] != [listing, str(user_id)]:
            raise _invalid("cursor was issued for another list or user")
        position = tuple(found[2:])
        if not all(type(v) is t for v, t in zip(position, shape, strict=True)):
            raise _invalid("cursor is malformed")
        return position

    def _verified(self, cursor: str) -> bytes:
        body, dot, tag = cursor.partition(".")
        if len(cursor) > MAX_CURSOR_LENGTH or not dot:
            raise _invalid("cursor is malformed")
        try:
            payload, given = _unb64(body), _unb64(tag)
        except (binascii.Error, ValueError):
            raise _invalid("cursor is malformed") from None
        if not hmac.compare_digest(given, self._tag(payload)):
            raise _invalid("cursor was altered or was not issued by this service")
        return payload

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:TAG_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not ASCII")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(f"{message}: start again without `cursor`", field="cursor")
