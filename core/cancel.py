"""Cancelling a job: no new provider call after it; what was never created is released.

A cancel answers at once: one short transaction stamps the job's `cancel_requested_at`
(under the job's row lock alone) and settles every slice no worker is running and no one
holds: a pending slice, or a running one whose lease ran out (its worker is gone), ends
with all its items `cancelled`. It never waits for a slice's lock (`SKIP LOCKED`): a
slice that is being recorded or claimed is left to its worker, and one skipped while
pending is settled by the sweep (`settle_abandoned`). Slices still running are stopped by
their workers (worker/cancellation.py) and record what their calls created; the last
slice to record finishes the job: `cancelled` when the cancel left items never attempted,
`completed` when every item was attempted before the cancel took effect (the job keeps
its `cancel_requested_at`, so the answer says the cancel came too late). When nothing
runs, the cancel finishes the job itself. Finishing releases the credits of every item
not created and writes job.completed, in the same transaction (core/finish.py).
"""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.orm import Session

from core import jobs, transitions
from core.database import SessionFactory
from core.errors import Conflict, NotFound
from core.finish import FinishedJob, finish_locked_job, notify_progress
from core.jobs import JobView
from core.vocabulary import UNFINISHED_SQL, JobStatus, SliceStatus

# The same slices, locked in slice order (waiting for their holders), as record() takes them.
CLAIMABLE_SLICES = text(
    "SELECT 1 FROM job_slices WHERE job_id = :job_id "
    f"AND (status = '{SliceStatus.PENDING}' "
    f"     OR (status = '{SliceStatus.RUNNING}' AND lease_expires_at < now())) "
    "ORDER BY slice_index FOR UPDATE"
)

# Cancelled jobs that still have a slice no worker runs (a worker died, a slice was given back).
ABANDONED = text(
    "SELECT DISTINCT j.id FROM jobs j JOIN job_slices s ON s.job_id = j.id "
    f"WHERE j.status IN {UNFINISHED_SQL} AND j.cancel_requested_at IS NOT NULL "
    f"AND (s.status = '{SliceStatus.PENDING}' "
    f"OR (s.status = '{SliceStatus.RUNNING}' AND s.lease_expires_at < now()))"
)


def cancel_job(sessions: SessionFactory, user_id: uuid.UUID, job_id: uuid.UUID) -> JobView:
    """Cancel the caller's job; raise NotFound (not theirs) or Conflict (already finished)."""
    with sessions() as session, session.begin():
        found = session.execute(
            text("SELECT user_id, status, cancel_requested_at FROM jobs WHERE id = :job_id"),
            {"job_id": job_id},
        ).first()
        if found is None or uuid.UUID(str(found.user_id)) != user_id:
            raise NotFound("no such job")
        # Only the first cancel of an unfinished job stamps it; a repeated one changes
        # nothing (not even the ETag), and a finished job is not locked at all. The stamp
        # waits for nothing but the job's row lock, which a slice holds only at the end
        # of its recording; the slices' locks are never waited for.
        unfinished = not JobStatus(found.status).terminal
        if found.cancel_requested_at is None and unfinished and _stamp(session, job_id):
            settle_locked(session, job_id)
            notify_progress(session, job_id)
        job = jobs.view_in(session, job_id)
        if job.terminal and job.cancel_requested_at is None:
            raise Conflict(f"the job is already {job.status}")
        return job


def ending(cancel_requested: bool, never_attempted: int) -> JobStatus:
    """How a job ends once its last slice is done: `cancelled` only if the cancel left
    items never attempted; a job that attempted everything first is `completed`."""
    return JobStatus.CANCELLED if cancel_requested and never_attempted else JobStatus.COMPLETED


def settle_locked(session: Session, job_id: uuid.UUID) -> FinishedJob | None:
    """Cancel the slices no worker runs or holds; finish the job if no slice is left.

    The caller holds the job's row lock (the stamp, or `settle_cancelled`).
    """
    settled = session.execute(transitions.SETTLE, {"job_id": job_id}).all()
    if not settled:
        return None
    row = session.execute(
        transitions.COUNT_SETTLED,
        {"items": sum(r.size for r in settled), "n": len(settled), "job_id": job_id},
    ).one()
    if row.slices_done < row.slices_total:
        return None
    return finish_locked_job(session, job_id, JobStatus.CANCELLED)


def settle_abandoned(sessions: SessionFactory) -> int:
    """Settle every cancelled job's slices that no worker runs; return how many jobs."""
    with sessions() as session, session.begin():
        found = [row.id for row in session.execute(ABANDONED)]
    for job_id in found:
        settle_cancelled(sessions, job_id)
    return len(found)


def settle_cancelled(sessions: SessionFactory, job_id: uuid.UUID) -> None:
    """Settle a cancelled job's slices no worker runs, waiting for whoever holds them.

    Run after a cancel's answer: a slice a turn held while the cancel skipped it is free
    again once that turn ends (no turn takes a cancelled job's slice). Only those slices
    and the job are locked, in record()'s order (slices first): running slices being
    recorded are not waited for.
    """
    with sessions() as session, session.begin():
        session.execute(CLAIMABLE_SLICES, {"job_id": job_id})
        session.execute(
            text("SELECT 1 FROM jobs WHERE id = :job_id FOR UPDATE"), {"job_id": job_id}
        )
        settle_locked(session, job_id)
        notify_progress(session, job_id)


def _stamp(session: Session, job_id: uuid.UUID) -> bool:
    """Stamp the cancel on a job still unfinished and not cancelled (under its lock)."""
    stamped = session.execute(
        text(
            "UPDATE jobs SET cancel_requested_at = now(), updated_at = now() "
            f"WHERE id = :job_id AND status IN {UNFINISHED_SQL} "
            "AND cancel_requested_at IS NULL RETURNING id"
        ),
        {"job_id": job_id},
    ).first()
    return stamped is not None
