"""Turns owed to users: a turn that ran nothing because of a user's limit is sent again.

There are at least as many turns as slices to run while every turn claims a slice. A turn
that finds slices waiting but claims none (their users are at their limit, or other
turns hold them and may pass them over) is owed, counted against one of those users
inside the turn's transaction. Slices are then running: each slice that finishes,
whoever's, pays one owed turn back in the transaction that records it, and its worker
sends the turn. A sent turn claims a slice, whose finish can
pay again, or is owed again while slices run: the chain ends only with the waiting work.
"""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.orm import Session

OWE = text(
    "INSERT INTO user_turns_owed (user_id, owed) VALUES (:user_id, 1) "
    "ON CONFLICT (user_id) DO UPDATE SET owed = user_turns_owed.owed + 1"
)
REPAY = text(
    "UPDATE user_turns_owed SET owed = owed - 1 WHERE user_id = ("
    "  SELECT user_id FROM user_turns_owed WHERE owed > 0 LIMIT 1 FOR UPDATE SKIP LOCKED"
    ") RETURNING owed"
)


def owe_turn(session: Session, user_id: uuid.UUID) -> None:
    """Count one turn the user's limit made run nothing."""
    session.execute(OWE, {"user_id": user_id})


def repay_turn(session: Session) -> bool:
    """Take back one owed turn, if any; True when the caller must send it."""
    return session.execute(REPAY).first() is not None
