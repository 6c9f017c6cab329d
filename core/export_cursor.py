"""Opaque cursors over one job's accounts or one user's vault, bound to their owner.

A cursor names the last row a client received: an item index within a job, or the
(created_at, id) pair of a vault row. It also names whose rows and which job they are, so a
cursor from another export, or another user's, is refused rather than silently followed.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime

import msgspec

from core.errors import InvalidInput

MAX_CURSOR_LENGTH = 400


@dataclass(frozen=True)
class Scope:
    """Whose accounts an export or listing reads: one job's, or the whole vault."""

    user_id: uuid.UUID
    job_id: uuid.UUID | None = None


@dataclass(frozen=True, order=True)
class Position:
    """Where a keyset page starts after: an item index (a job), or created_at and id (a vault)."""

    item_index: int = -1
    created_at: datetime | None = None
    account_id: uuid.UUID | None = None


START = Position()


class _Token(msgspec.Struct, forbid_unknown_fields=True):
    u: uuid.UUID
    j: uuid.UUID | None
    i: int = -1
    t: datetime | None = None
    a: uuid.UUID | None = None


def encode(scope: Scope, position: Position) -> str:
    """The opaque text of a cursor at `position` within `scope`."""
    token = _Token(
        scope.user_id, scope.job_id, position.item_index, position.created_at, position.account_id
    )
    raw = msgspec.json.encode(token)
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode(text: str, scope: Scope) -> Position:
    """The position a cursor names, or InvalidInput when it is malformed or not this scope's."""
    if not text or len(text) > MAX_CURSOR_LENGTH:
        raise InvalidInput("cursor is malformed", field="cursor")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        token = msgspec.json.decode(raw, type=_Token)
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise InvalidInput("cursor is malformed", field="cursor") from exc
    if token.u != scope.user_id or token.j != scope.job_id:
        raise InvalidInput("cursor belongs to another listing or user", field="cursor")
    if scope.job_id is None and token.t is not None and token.a is not None:
        return Position(created_at=token.t, account_id=token.a)
    if scope.job_id is not None and token.i >= 0:
        return Position(item_index=token.i)
    raise InvalidInput("cursor is malformed", field="cursor")
