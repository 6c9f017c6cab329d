"""Daemon heartbeats: one row per running reconcile daemon, refreshed every few seconds."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.database import SessionFactory
from outbox.backlog import Backlog, outbox_backlog

BEAT = text(
    """
    INSERT INTO reconcile_heartbeats AS h
        (daemon_id, hostname, pid, is_leader, outbox_backlog, oldest_pending_seconds)
    VALUES (:daemon_id, :hostname, :pid, :is_leader, :backlog, :oldest)
    ON CONFLICT (daemon_id) DO UPDATE SET
        last_seen = now(), is_leader = excluded.is_leader,
        outbox_backlog = excluded.outbox_backlog,
        oldest_pending_seconds = excluded.oldest_pending_seconds
    """
)

NEWEST = text(
    """
    SELECT daemon_id, hostname, pid, is_leader, started_at, last_seen,
           extract(epoch FROM now() - last_seen) AS age_seconds,
           outbox_backlog, oldest_pending_seconds
    FROM reconcile_heartbeats ORDER BY last_seen DESC LIMIT 1
    """
)


@dataclass(frozen=True)
class DaemonIdentity:
    """Who a heartbeat row belongs to."""

    daemon_id: uuid.UUID = field(default_factory=uuid.uuid4)
    hostname: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)


def beat(sessions: SessionFactory, identity: DaemonIdentity, is_leader: bool) -> Backlog:
    """Record that this daemon is alive, whether it leads, and the outbox backlog."""
    with sessions() as session, session.begin():
        backlog = outbox_backlog(session)
        session.execute(
            BEAT,
            {
                "daemon_id": identity.daemon_id,
                "hostname": identity.hostname,
                "pid": identity.pid,
                "is_leader": is_leader,
                "backlog": backlog.rows,
                "oldest": backlog.oldest_seconds,
            },
        )
    return backlog


def remove(sessions: SessionFactory, identity: DaemonIdentity) -> None:
    """Delete this daemon's row when it stops cleanly."""
    with sessions() as session, session.begin():
        session.execute(
            text("DELETE FROM reconcile_heartbeats WHERE daemon_id = :id"),
            {"id": identity.daemon_id},
        )


def newest(session: Session) -> dict[str, Any] | None:
    """The most recent heartbeat as JSON-ready data, inside the caller's transaction."""
    row = session.execute(NEWEST).mappings().first()
    if row is None:
        return None
    return {
        "daemon_id": str(row["daemon_id"]),
        "hostname": row["hostname"],
        "pid": row["pid"],
        "is_leader": row["is_leader"],
        "started_at": row["started_at"].isoformat(),
        "last_seen": row["last_seen"].isoformat(),
        "age_seconds": round(float(row["age_seconds"]), 3),
        "outbox_backlog": row["outbox_backlog"],
        "outbox_oldest_pending_seconds": round(float(row["oldest_pending_seconds"]), 3),
    }
