"""Finishing a job: terminal status, released credits and the outbox row, together."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from core import tracing, transitions
from core.database import SessionFactory
from core.outbox import OUTBOX_CHANNEL
from core.vocabulary import JobStatus, Topic

PROGRESS_CHANNEL = "tally_job_progress"


NOTIFY_EACH = text("SELECT pg_notify(:c, j) FROM unnest(CAST(:jobs AS text[])) AS j")


# Each job's release entry, once (the unique (job_id, kind) makes a repeat a no-op).
RELEASE_EACH = text(
    "INSERT INTO credit_ledger (user_id, job_id, kind, amount) "
    "SELECT user_id, job_id, 'release', amount FROM unnest(CAST(:user_ids AS uuid[]), "
    "CAST(:job_ids AS uuid[]), CAST(:amounts AS bigint[])) AS t(user_id, job_id, amount) "
    "ON CONFLICT (job_id, kind) DO NOTHING RETURNING user_id, amount"
)
ADD_TO_BALANCES = text(
    "UPDATE user_credits c SET balance = c.balance + t.amount, "
    "ledger_total = c.ledger_total + t.entries, updated_at = now() "
    "FROM unnest(CAST(:user_ids AS uuid[]), CAST(:amounts AS bigint[]), "
    "CAST(:entries AS bigint[])) AS t(user_id, amount, entries) "
    "WHERE c.user_id = t.user_id"
)
# Each row it inserts announces itself to the appliers at commit (core/outbox.py).
WRITE_COMPLETIONS = text(
    "INSERT INTO outbox (topic, key, user_id, payload, trace_context) "
    "SELECT :topic, key, user_id, payload, :trace_context FROM unnest(CAST(:keys AS text[]), "
    "CAST(:user_ids AS uuid[]), CAST(:payloads AS jsonb[])) AS t(key, user_id, payload) "
    f"ON CONFLICT (topic, key) DO NOTHING RETURNING pg_notify('{OUTBOX_CHANNEL}', '')"
)


def notify_progress(session: Session, *job_ids: uuid.UUID) -> None:
    """Tell listeners (web processes) at commit that these jobs' status or counts changed."""
    if job_ids:
        jobs = [str(job_id) for job_id in job_ids]
        session.execute(NOTIFY_EACH, {"c": PROGRESS_CHANNEL, "jobs": jobs})


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
    finished = finish_locked_jobs(session, {job_id: status})
    return finished[0] if finished else None


def finish_locked_jobs(session: Session, endings: dict[uuid.UUID, JobStatus]) -> list[FinishedJob]:
    """Finish many jobs as `finish_locked_job` finishes one, in a few statements in all.

    The caller holds the jobs' row locks; jobs already terminal are left as they are.
    """
    if not endings:
        return []
    ordered = sorted(endings, key=str)
    rows = session.execute(
        transitions.FINISH,
        {"job_ids": [str(j) for j in ordered], "statuses": [str(endings[j]) for j in ordered]},
    ).all()
    if not rows:
        return []
    finished = [
        FinishedJob(
            r.id, r.user_id, JobStatus(r.status), r.requested, r.successful, r.failures, r.cancelled
        )
        for r in sorted(rows, key=lambda r: str(r.id))
    ]
    notify_progress(session, *(job.job_id for job in finished))
    _release_unused(session, rows)
    session.execute(
        WRITE_COMPLETIONS,
        {
            "topic": str(Topic.JOB_COMPLETED),
            "keys": [str(job.job_id) for job in finished],
            "user_ids": [str(job.user_id) for job in finished],
            "payloads": [json.dumps(completion_payload(job)) for job in finished],
            # The apply's span links back to the trace that finished each job.
            "trace_context": tracing.current_traceparent(),
        },
    )
    for job in finished:
        tracing.event("job.finished", finish_attributes(job))
    return finished


def _release_unused(session: Session, rows: Sequence[Any]) -> None:
    """Release each job's credits of items not created, and add them to the balances."""
    released = session.execute(
        RELEASE_EACH,
        {
            "user_ids": [str(r.user_id) for r in rows],
            "job_ids": [str(r.id) for r in rows],
            "amounts": [(r.failures + r.cancelled) * r.price for r in rows],
        },
    ).all()
    totals: dict[str, int] = {}
    entries: dict[str, int] = {}
    for entry in released:
        user = str(entry.user_id)
        totals[user] = totals.get(user, 0) + int(entry.amount)
        entries[user] = entries.get(user, 0) + 1
    users = sorted(totals)  # balances in one order: two finishers never deadlock
    if users:
        moved = {"amounts": [totals[u] for u in users], "entries": [entries[u] for u in users]}
        session.execute(ADD_TO_BALANCES, {"user_ids": users, **moved})


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
        skipped = session.execute(transitions.FAIL_SLICES, {"job_id": job_id}).all()
        session.execute(
            transitions.COUNT_FAILED,
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
