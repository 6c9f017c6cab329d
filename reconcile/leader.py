"""Leader election: one reconcile daemon runs the singleton jobs.

The leader is the daemon holding a session-level advisory lock on a connection of its
own. PostgreSQL releases the lock when that connection closes, so when the leader dies
(its process ends, or the server stops hearing from it: keepalives) another daemon takes
the lock at its next attempt. Being leader is an economy, not a safety measure: the
singleton jobs stay correct if two daemons briefly both run them (the recompute and the
report serialise on the stats lock; the sweep stamps the slices it takes, SKIP LOCKED).
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from core.database import make_engine
from core.locks import RECONCILE_LEADER_LOCK

logger = logging.getLogger(__name__)

# The server drops a silent client after about idle + interval * count seconds.
SERVER_KEEPALIVE = (
    "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; "
    "SET tcp_keepalives_count = 3; SET statement_timeout = '5s'"
)
CLIENT_KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}

# A bigint advisory key shows in pg_locks as (classid, objid) = (high, low) 32 bits.
STILL_HELD = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
    "AND pid = pg_backend_pid() AND granted AND objsubid = 1 "
    "AND classid::bigint = :high AND objid::bigint = :low)"
)


class Leadership:
    """This process's claim to the leader lock, on a dedicated connection."""

    def __init__(self, database_url: str, key: int = RECONCILE_LEADER_LOCK) -> None:
        self._engine = make_engine(
            database_url,
            pool_size=1,
            application_name="tally-reconcile-leader",
            autocommit=True,
            connect_args={"connect_timeout": 5, **CLIENT_KEEPALIVE},
        )
        self._key = key
        self._connection: Connection | None = None
        self._leader = False
        self._guard = threading.Lock()

    @property
    def is_leader(self) -> bool:
        """Whether this process led at the last check (no database round trip)."""
        return self._leader

    def campaign(self) -> bool:
        """Keep the lock if still held, else try to take it; return whether we lead."""
        with self._guard:
            if self._leader and self._still_held():
                return True
            if self._leader:
                logger.warning("leader lock lost (its connection failed)")
            self._leader = self._try_acquire()
            return self._leader

    def confirm(self) -> bool:
        """Whether this process still leads, checked on the lock's own connection."""
        with self._guard:
            if self._leader and not self._still_held():
                logger.warning("leader lock lost (its connection failed)")
                self._leader = False
            return self._leader

    def resign(self) -> None:
        """Close the lock's connection (releasing the lock) and stop campaigning."""
        with self._guard:
            self._leader = False
            self._drop()
            self._engine.dispose()

    def _try_acquire(self) -> bool:
        try:
            if self._connection is None:
                self._connection = self._engine.connect()
                self._connection.exec_driver_sql(SERVER_KEEPALIVE)
            taken = self._connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
            ).scalar_one()
        except SQLAlchemyError as exc:
            logger.warning("leader lock: database unreachable (%s)", type(exc).__name__)
            self._drop()
            return False
        return bool(taken)

    def _still_held(self) -> bool:
        if self._connection is None:
            return False
        try:
            held = self._connection.execute(
                STILL_HELD, {"high": self._key >> 32, "low": self._key & 0xFFFFFFFF}
            ).scalar_one()
        except SQLAlchemyError:
            self._drop()
            return False
        if not held:
            self._drop()
        return bool(held)

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.invalidate()
            connection.close()
        except SQLAlchemyError:
            logger.debug("closing a failed leader connection", exc_info=True)
