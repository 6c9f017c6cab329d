"""The turn queue: which users have work to run, in the order turns serve them.

A user with a pending slice has a row in `turn_queue`. A turn serves the first user whose
`wake_at` has passed and sends them to the back (worker/turns.py), so users take turns
round-robin however many jobs each has queued. A user who arrives with work goes to the
front: a newcomer waits for one turn, not for everyone queued before them.

Arriving takes the user's row lock (ON CONFLICT DO UPDATE locks the row even when its
WHERE is false): a turn that is removing the row commits first, and the insert then adds
the user again, so no arrival is lost between a turn's last look and its removal.
"""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.orm import Session

# Returns the user when it joined the queue or woke from a wait: the caller sends a turn.
ARRIVE = text(
    "INSERT INTO turn_queue (user_id, position) "
    "VALUES (:user_id, (SELECT coalesce(min(position), 0) - 1 FROM turn_queue)) "
    "ON CONFLICT (user_id) DO UPDATE SET wake_at = '-infinity' "
    "WHERE turn_queue.wake_at > now() "
    "RETURNING user_id"
)

# Users with work who may be served now: the sweep's count when turns stall.
READY_USERS = text(
    "SELECT count(*) FROM (SELECT 1 FROM turn_queue WHERE wake_at <= now() LIMIT :most) r"
)

# Moves once per turn taken; nextval never waits for another transaction.
TURN_TAKEN = text("SELECT nextval('turns_taken')")
TURNS_TAKEN = text("SELECT last_value FROM turns_taken")


def arrive(session: Session, user_id: uuid.UUID) -> bool:
    """Put the user in the turn queue (front) or wake it; True when a turn must be sent."""
    return session.execute(ARRIVE, {"user_id": user_id}).first() is not None


def arrive_all(session: Session, user_ids: set[uuid.UUID]) -> int:
    """Arrive each user (in a fixed order, so two callers never deadlock); turns to send."""
    return sum(arrive(session, user_id) for user_id in sorted(user_ids, key=str))
