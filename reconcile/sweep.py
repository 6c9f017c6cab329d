"""The stale-job sweep: re-send slice messages that were lost or whose worker died."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import text

from core.cancel import settle_abandoned
from core.database import SessionFactory
from core.vocabulary import SliceStatus

Enqueue = Callable[[uuid.UUID, Iterable[int]], int]


@dataclass(frozen=True)
class Swept:
    """What a sweep (or every sweep since a report) re-sent: jobs, and slice messages."""

    jobs: int = 0
    slices: int = 0

    def __add__(self, other: Swept) -> Swept:
        return Swept(self.jobs + other.jobs, self.slices + other.slices)


# Pending slices not re-sent for `stale` seconds, and running slices whose lease ran out
# and that were not re-sent since, are stamped and returned for re-sending.
FIND_STALE = text(
    f"""
    UPDATE job_slices s SET enqueued_at = now()
    FROM (
        SELECT job_id, slice_index FROM job_slices
        WHERE (status = '{SliceStatus.PENDING}'
               AND enqueued_at < now() - make_interval(secs => :stale))
           OR (status = '{SliceStatus.RUNNING}' AND lease_expires_at < now()
               AND (enqueued_at < lease_expires_at
                    OR enqueued_at < now() - make_interval(secs => :stale)))
        ORDER BY enqueued_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ) stale
    WHERE s.job_id = stale.job_id AND s.slice_index = stale.slice_index
    RETURNING s.job_id, s.slice_index
    """
)


def find_stale_slices(
    sessions: SessionFactory, stale_seconds: float, limit: int = 5000
) -> dict[uuid.UUID, list[int]]:
    """Stamp and return the slices to re-send, grouped by job."""
    with sessions() as session, session.begin():
        rows = session.execute(FIND_STALE, {"stale": stale_seconds, "limit": limit}).all()
    stale: dict[uuid.UUID, list[int]] = {}
    for row in rows:
        stale.setdefault(row.job_id, []).append(row.slice_index)
    return stale


def sweep(sessions: SessionFactory, enqueue: Enqueue, stale_seconds: float) -> Swept:
    """Re-send every stale slice; return how many jobs and messages were re-sent.

    A cancelled job's slices are never re-sent: those no worker runs are settled instead.
    """
    settle_abandoned(sessions)
    stale = find_stale_slices(sessions, stale_seconds)
    sent = sum(enqueue(job_id, sorted(indices)) for job_id, indices in stale.items())
    return Swept(jobs=len(stale), slices=sent)
