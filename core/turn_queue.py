"""The turn queue: which users have work to run, in the order turns serve them.

A user with a pending slice has a row in `turn_queue`. A turn serves the first user whose
`wake_at` has passed and sends them to the back (worker/turns.py), so users take turns
round-robin however many jobs each has queued. A user who arrives with work goes to the
front: a newcomer waits for one turn, not for everyone queued before them.

Arriving takes the user's row lock: a turn that is removing the row commits first, and the
insert then adds the user again, so no arrival is lost between a turn's last look and its
removal. A turn that meets a row so held skips it, and ends when it finds no other user
(worker/turns.py); so whoever arrives sends a turn once committed, and no work waits on a
turn that was lost to the hold.
"""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.orm import Session

# Joins the user at the front, or wakes them where they are.
ARRIVE = text(
    "INSERT INTO turn_queue (user_id, position) "
    "VALUES (:user_id, (SELECT coalesce(min(position), 0) - 1 FROM turn_queue)) "
    "ON CONFLICT (user_id) DO UPDATE SET wake_at = '-infinity'"
)

# Users with work who may be served now: the sweep's count when turns stall.
READY_USERS = text(
    "SELECT count(*) FROM (SELECT 1 FROM turn_queue WHERE wake_at <= now() LIMIT :most) r"
)

# Moves once per turn that serves a user; nextval never waits for another transaction.
TURN_TAKEN = text("SELECT nextval('turns_taken')")
TURNS_TAKEN = text("SELECT last_value FROM turns_taken")


def arrive(session: Session, user_id: uuid.UUID) -> None:
    """Put the user in the turn queue (front) or wake them; the caller sends a turn after
    the commit."""
    session.execute(ARRIVE, {"user_id": user_id})


def arrive_all(session: Session, user_ids: set[uuid.UUID]) -> None:
    """Arrive each user (in a fixed order, so two callers never deadlock)."""
    for user_id in sorted(user_ids, key=str):
        arrive(session, user_id)
