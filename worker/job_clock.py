"""When a job began, on this process's monotonic clock: patience counts within the job."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import text

from core.database import SessionFactory

STARTED = text(
    "SELECT extract(epoch FROM now() - coalesce(started_at, now())) FROM jobs WHERE id = :id"
)


def job_started(sessions: SessionFactory, job_id: uuid.UUID) -> float:
    """The monotonic time at which the job started (now, if it has not or is gone)."""
    with sessions() as session, session.begin():
        age = session.execute(STARTED, {"id": job_id}).scalar()
    return time.monotonic() - float(age or 0.0)
