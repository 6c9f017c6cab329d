"""Finishing a job: terminal status, released credits and the outbox row, together."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from core import credits, outbox, tracing
from core.database import SessionFactory
from core.vocabulary import UNFINISHED_SQL, JobStatus, SliceStatus, Topic

PROGRESS_CHANNEL = "tally_job_progress"


def notify_progress(session: Session, job_id: uuid.UUID) -> None:
    """Tell listeners (web processes) at commit that this job's status or counts changed."""
    session.execute(text("SELECT pg_notify(:c, :j)"), {"c": PROGRESS_CHANNEL, "j": str(job_id)})


@dataclass(frozen=True)
class FinishedJob:
    """The figures a job ended with."""

    job_id: uuid.UUID
    user_id: uuid.UUID
    status: JobStatus
    requested: int
    successful: int
    failures: int
    cancelled: int = 0


def finish_locked_job(session: Session, job_id: uuid.UUID, status: JobStatus) -> FinishedJob | None:
    """Mark a job terminal, release the credits of items not created, write job.completed.

    The caller holds the job's row lock inside its open transaction; every write here
    is idempotent, so a repeated call changes nothing.
    """
    row = session.execute(
        text(
            "UPDATE jobs SET status = :status, finished_at = now(), updated_at = now(), "
            "started_at = coalesce(started_at, now()) "
            f"WHERE id = :job_id AND status IN {UNFINISHED_SQL} "
            "RETURNING user_id, requested, successful, failures, cancelled, price"
        ),
        {"job_id": job_id, "status": status},
    ).first()
    if row is None:
        return None
    notify_progress(session, job_id)
    credits.release(session, row.user_id, job_id, (row.failures + row.cancelled) * row.price)
    finished = FinishedJob(
        job_id, row.user_id, status, row.requested, row.successful, row.failures, row.cancelled
    )
    outbox.add(session, Topic.JOB_COMPLETED, str(job_id), row.user_id, completion_payload(finished))
    tracing.event("job.finished", finish_attributes(finished))
    return finished


def finish_attributes(finished: FinishedJob) -> dict[str, str | int]:
    """What a trace says about a finished job: ids, status and counts."""
    return {
        "job.id": str(finished.job_id),
        "user.id": str(finished.user_id),
        "job.status": str(finished.status),
        "job.requested": finished.requested,
        "job.successful": finished.successful,
        "job.failures": finished.failures,
    }


def fail_job(sessions: SessionFactory, job_id: uuid.UUID, error: str) -> FinishedJob | None:
    """End a job that cannot run: every unfinished item counts as a failure."""
    with sessions() as session, session.begin():
        # Slices before the job, the order record() takes them in: no deadlock between them.
        session.execute(
            text("SELECT 1 FROM job_slices WHERE job_id = :job_id ORDER BY slice_index FOR UPDATE"),
            {"job_id": job_id},
        )
        locked = session.execute(
            text("SELECT 1 FROM jobs WHERE id = :job_id FOR UPDATE"), {"job_id": job_id}
        ).first()
        if locked is None:
            return None
        skipped = session.execute(
            text(
                f"UPDATE job_slices SET status = '{SliceStatus.DONE}', "
                "failures = stop_index - start_index, "
                "finished_at = now(), lease_expires_at = NULL "
                f"WHERE job_id = :job_id AND status <> '{SliceStatus.DONE}' "
                "RETURNING stop_index - start_index AS size"
            ),
            {"job_id": job_id},
        ).all()
        session.execute(
            text(
                "UPDATE jobs SET failures = failures + :failed, slices_done = slices_done + :n, "
                f"error = :error WHERE id = :job_id AND status IN {UNFINISHED_SQL}"
            ),
            {
                "failed": sum(r.size for r in skipped),
                "n": len(skipped),
                "error": error,
                "job_id": job_id,
            },
        )
        return finish_locked_job(session, job_id, JobStatus.FAILED)


def completion_payload(job: FinishedJob) -> dict[str, object]:
    """The job.completed payload: the figures the job ended with."""
    return {
        "job_id": str(job.job_id),
        "requested": job.requested,
        "successful": job.successful,
        "failures": job.failures,
        "cancelled": job.cancelled,
    }
