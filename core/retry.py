"""Retrying a finished job's failures as a child job of exactly its failed items.

The child is created by the one submit operation every job goes through (core/jobs.py):
credits are held anew (InsufficientCredits when short), and its Idempotency-Key, derived
from the parent, makes a repeated retry answer the same child. In the submit's transaction
go the link (which parent slot each child slot stands for) and the kept keys: a child slot
whose parent slot's calls went unanswered (ambiguous_items) asks the provider with the
parent's key, so a provider that honours keys answers the account it may already have
made instead of making a second one. No worker can claim the child before both exist.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from core import jobs
from core.database import SessionFactory
from core.errors import Conflict, NotFound
from core.finish import notify_progress
from core.jobs import JobRequest, Submission
from core.limits import UserLimits
from core.schema import Job, JobRetry
from core.settings import Settings
from core.vocabulary import JobStatus

KEY_PREFIX = "tally-retry:"

AMBIGUOUS_KEYS = text("SELECT item_index, provider_key FROM ambiguous_items WHERE job_id = :job_id")

KEEP_KEYS = text(
    "INSERT INTO kept_keys (job_id, item_index, provider_key) "
    "SELECT :job_id, * FROM unnest(CAST(:indices AS int[]), CAST(:keys AS text[]))"
)

FAILED_ITEMS = text(
    "SELECT i FROM generate_series(0, :requested - 1) AS i "
    "WHERE NOT EXISTS (SELECT 1 FROM user_accounts a WHERE a.job_id = :job_id "
    "AND a.item_index = i) ORDER BY i"
)


@dataclass(frozen=True)
class Links:
    """The job a job retries, and the job that retries it."""

    retry_of: uuid.UUID | None = None
    retried_by: uuid.UUID | None = None


def retry_failures(
    sessions: SessionFactory,
    settings: Settings,
    user_id: uuid.UUID,
    job_id: uuid.UUID,
    limits: UserLimits | None = None,
) -> Submission:
    """Submit (or find) the child job of a finished job's failed items."""
    parent, failed, ambiguous = _failed_items(sessions, user_id, job_id)
    request = JobRequest(user_id, len(failed), parent.provider, KEY_PREFIX + str(job_id))
    kept = {slot: ambiguous[i] for slot, i in enumerate(failed) if i in ambiguous}

    def link(session: Session, child_id: uuid.UUID) -> None:
        session.execute(
            insert(JobRetry).values(
                child_job_id=child_id, parent_job_id=job_id, parent_indices=failed
            )
        )
        if kept:
            keys = {"job_id": child_id, "indices": list(kept), "keys": list(kept.values())}
            session.execute(KEEP_KEYS, keys)
        notify_progress(session, job_id)  # the parent's answer now names its retry

    return jobs.submit(sessions, settings, request, limits, alongside=link)


def _failed_items(
    sessions: SessionFactory, user_id: uuid.UUID, job_id: uuid.UUID
) -> tuple[jobs.JobView, list[int], dict[int, str]]:
    """The parent, its failed slots in order, and the keys of those that were ambiguous."""
    with sessions() as session, session.begin():
        found = session.scalar(select(Job).where(Job.id == job_id, Job.user_id == user_id))
        if found is None:
            raise NotFound("no such job")
        parent = jobs.view_in(session, job_id)
        _check_retryable(parent)
        failed = [row.i for row in session.execute(FAILED_ITEMS, _slots(parent))]
        rows = session.execute(AMBIGUOUS_KEYS, {"job_id": job_id})
        ambiguous = {row.item_index: row.provider_key for row in rows}
    if len(failed) != parent.failures:
        raise Conflict("this job's failed items cannot be told apart; it cannot be retried")
    return parent, failed, ambiguous


def _slots(parent: jobs.JobView) -> dict[str, object]:
    return {"requested": parent.requested, "job_id": parent.id}


def _check_retryable(parent: jobs.JobView) -> None:
    if not parent.terminal:
        raise Conflict("the job has not finished; retry it once it has")
    if parent.failures == 0:
        raise Conflict("the job has no failed items to retry")
    if parent.status == JobStatus.CANCELLED and parent.cancelled:
        raise Conflict("a cancelled job's failures cannot be told apart from items never tried")
