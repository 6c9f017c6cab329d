"""The caller's jobs, newest first, one keyset page at a time."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from core.database import SessionFactory
from core.jobs import VIEW_COLUMNS, JobView
from core.pages import fetch_keyset
from core.schema import Job, UserCredits

# The order of ix_jobs_user_id_created_at_id.
KEYS = (Job.__table__.c.created_at, Job.__table__.c.id)
JobPosition = tuple[datetime, uuid.UUID]


@dataclass(frozen=True)
class JobList:
    """One page of jobs, every job of the user, and where the next page starts (or None)."""

    jobs: list[JobView]
    total: int
    last: JobPosition | None


def list_jobs(
    sessions: SessionFactory, user_id: uuid.UUID, limit: int, after: JobPosition | None = None
) -> JobList:
    """One page of the caller's jobs after `after`; the total is the user's job counter."""
    columns = [Job.__table__.c[name] for name in VIEW_COLUMNS]
    with sessions() as session, session.begin():
        page = fetch_keyset(session, columns, Job.user_id == user_id, KEYS, after, limit)
        total = session.scalar(select(UserCredits.jobs_total).where(UserCredits.user_id == user_id))
    views = [JobView(**row._mapping) for row in page.rows]
    last = None if page.last is None else (page.last[0], page.last[1])
    return JobList(views, int(total or 0), last)
