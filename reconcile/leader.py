"""Leader election: one reconcile daemon runs the singleton jobs, under a lease that expires.

The leader is the daemon named in the `reconcile_leader` row while its `expires_at` is
in the future. It renews the lease every TALLY_LEADER_RETRY_SECONDS; another daemon takes
the row once the lease has run out. So a leader that dies, is cut off, or is frozen
(SIGSTOP, a stalled VM: its kernel may keep the TCP connection alive) is replaced within
TALLY_LEADER_LEASE_SECONDS, and one that wakes up finds the lease gone and steps down
before it runs another singleton job: `confirm()` asks the database, and a lease whose
local deadline has passed is given up without asking. Being leader is an economy, not a
safety measure: the singleton jobs stay correct if two daemons briefly both run them (a
recompute or repair moves a counter only if it still holds the figure its check read; the
sweep stamps the slices it takes, SKIP LOCKED).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from core.database import SessionFactory

logger = logging.getLogger(__name__)

LEASE_NAME = "reconcile"

# Take the row if it is free or its lease ran out; renew it if it is ours.
ELECT = text(
    """
    INSERT INTO reconcile_leader AS l (name, leader_id, elected_at, expires_at)
    VALUES (:name, :me, now(), now() + make_interval(secs => :ttl))
    ON CONFLICT (name) DO UPDATE SET
        leader_id = excluded.leader_id,
        elected_at = CASE WHEN l.leader_id = excluded.leader_id
                          THEN l.elected_at ELSE now() END,
        expires_at = excluded.expires_at
    WHERE l.leader_id = excluded.leader_id OR l.expires_at < now()
    RETURNING l.leader_id
    """
)
HOLDS = text(
    "SELECT 1 FROM reconcile_leader WHERE name = :name AND leader_id = :me AND expires_at > now()"
)
RESIGN = text("DELETE FROM reconcile_leader WHERE name = :name AND leader_id = :me")


class Leadership:
    """This daemon's claim to the leader lease."""

    def __init__(self, sessions: SessionFactory, daemon_id: uuid.UUID, lease_seconds: float):
        self._sessions = sessions
        self._me = daemon_id
        self._ttl = lease_seconds
        self._deadline = 0.0  # monotonic time the lease runs out, as far as we know
        self._guard = threading.Lock()

    @property
    def is_leader(self) -> bool:
        """Whether this daemon holds an unexpired lease by its own clock (no round trip)."""
        return time.monotonic() < self._deadline

    def campaign(self) -> bool:
        """Renew the lease if it is ours, else take it if it ran out; return whether we lead."""
        with self._guard:
            asked = time.monotonic()
            try:
                with self._sessions() as session, session.begin():
                    won = session.execute(ELECT, self._params(ttl=self._ttl)).first()
            except SQLAlchemyError as exc:
                logger.warning("leader lease: database unreachable (%s)", type(exc).__name__)
                return self.is_leader  # what is left of the lease runs out by itself
            self._deadline = asked + self._ttl if won is not None else 0.0
            return won is not None

    def confirm(self) -> bool:
        """Whether this daemon still leads, checked in the database before a singleton job."""
        with self._guard:
            if not self.is_leader:
                return False
            try:
                with self._sessions() as session, session.begin():
                    holds = session.execute(HOLDS, self._params()).first() is not None
            except SQLAlchemyError:
                holds = False
            if not holds:
                logger.warning("leader lease lost (it ran out or another daemon took it)")
                self._deadline = 0.0
            return holds

    def resign(self) -> None:
        """Give the lease up so that another daemon may take it at once."""
        with self._guard:
            self._deadline = 0.0
            try:
                with self._sessions() as session, session.begin():
                    session.execute(RESIGN, self._params())
            except SQLAlchemyError:
                logger.warning("could not give up the leader lease; it runs out by itself")

    def _params(self, **extra: object) -> dict[str, object]:
        return {"name": LEASE_NAME, "me": self._me, **extra}
