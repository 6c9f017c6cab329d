"""Submitting jobs and reading them back, always scoped to their owner."""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime

from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import credits, reads, turn_queue
from core.database import SessionFactory
from core.errors import IdempotencyKeyReused, InvalidInput, NotFound
from core.limits import UserLimits, check_submit
from core.providers.registry import check_offered
from core.schema import Job, JobRetry
from core.settings import Settings
from core.vocabulary import TERMINAL_JOB_STATUSES, JobStatus

MAX_IDEMPOTENCY_KEY_LENGTH = 200


@dataclass(frozen=True)
class JobRequest:
    """What a user asked for."""

    user_id: uuid.UUID
    count: int
    provider: str
    idempotency_key: str | None = None

    @property
    def fingerprint(self) -> str:
        """A digest of what was asked (count and provider), stored beside the key."""
        body = json.dumps({"count": self.count, "provider": self.provider}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class JobView:
    """A job as its owner sees it."""

    id: uuid.UUID
    user_id: uuid.UUID
    status: JobStatus
    provider: str
    requested: int
    successful: int
    failures: int
    slices_total: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    cancelled: int = 0
    cancel_requested_at: datetime | None = None
    waiting: str | None = None  # why an unfinished job is slow: a WaitingReason
    retry_at: datetime | None = None  # when the provider said it may be called again
    orphans: int = 0
    failure_reasons: dict[str, int] = field(default_factory=dict)
    retry_of: uuid.UUID | None = None  # the job whose failed items this job retries
    retried_by: uuid.UUID | None = None  # the job retrying this job's failed items

    @property
    def progress(self) -> float:
        """Share of items with an outcome, from 0.0 to 1.0."""
        return round((self.successful + self.failures) / self.requested, 4)

    @property
    def terminal(self) -> bool:
        """Whether the job has reached its final status."""
        return self.status in TERMINAL_JOB_STATUSES


VIEW_COLUMNS = tuple(f.name for f in fields(JobView) if f.name in Job.__table__.c)
# A job's retry links, read with it: two unique-index lookups (core/retry.py writes them).
RETRY_OF = select(JobRetry.parent_job_id).where(JobRetry.child_job_id == Job.id)
RETRIED_BY = select(JobRetry.child_job_id).where(JobRetry.parent_job_id == Job.id)


@dataclass(frozen=True)
class Submission:
    """The job a submit answered with, and whether this call created it."""

    job: JobView
    created: bool

    @property
    def turns(self) -> int:
        """Turn messages to send once committed: one for a job this call created."""
        return int(self.created)


def validate_request(request: JobRequest, settings: Settings) -> None:
    """Raise InvalidInput when a request breaks a rule."""
    if not 1 <= request.count <= settings.max_job_count:
        raise InvalidInput(f"count must be between 1 and {settings.max_job_count}", field="count")
    check_offered(request.provider, settings.offered_providers)
    key = request.idempotency_key
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidInput("Idempotency-Key must be 1 to 200 characters", field="Idempotency-Key")


def submit(
    sessions: SessionFactory,
    settings: Settings,
    request: JobRequest,
    limits: UserLimits | None = None,
    *,
    alongside: Callable[[Session, uuid.UUID], None] | None = None,
) -> Submission:
    """Create a queued job with its slices and hold its credits, in one transaction.

    With `limits`, a user past one of them is refused (TooManyRequests) and nothing changes;
    a repeated Idempotency-Key still answers its job. `alongside` writes what belongs with
    the new job in the same transaction, so no worker ever sees the job without it.
    """
    validate_request(request, settings)
    existing = _find_by_idempotency_key(sessions, request)
    if existing is not None:
        return Submission(existing, created=False)
    try:
        with sessions() as session, session.begin():
            check_submit(session, request.user_id, limits or UserLimits())
            job = _insert_job(session, settings, request)
            _insert_slices(session, job, settings.slice_size)
            credits.hold(session, request.user_id, job.id, request.count * settings.price)
            if alongside is not None:
                alongside(session, job.id)
            turn_queue.arrive(session, request.user_id)
            return Submission(_view(job), created=True)
    except IntegrityError:
        # A concurrent request with the same Idempotency-Key won the race.
        existing = _find_by_idempotency_key(sessions, request)
        if existing is None:
            raise
        return Submission(existing, created=False)


def read_job(engine: Engine, user_id: uuid.UUID, job_id: uuid.UUID) -> JobView:
    """Return the caller's job, or NotFound (also for another user's job).

    Reads on the lean engine status polls use (core/reads.py), with the job's retry links.
    """
    query = select(
        *(Job.__table__.c[name] for name in VIEW_COLUMNS),
        RETRY_OF.scalar_subquery().label("retry_of"),
        RETRIED_BY.scalar_subquery().label("retried_by"),
    ).where(Job.id == job_id, Job.user_id == user_id)
    row = reads.read(engine, lambda connection: connection.execute(query).first())
    if row is None:
        raise NotFound("no such job")
    return JobView(**row._mapping)


def view_in(session: Session, job_id: uuid.UUID) -> JobView:
    """The job as its owner sees it, read inside the caller's transaction."""
    query = select(Job).where(Job.id == job_id).execution_options(populate_existing=True)
    return _view(session.execute(query).scalar_one())


def _insert_job(session: Session, settings: Settings, request: JobRequest) -> Job:
    job = Job(
        user_id=request.user_id,
        provider=request.provider,
        requested=request.count,
        price=settings.price,
        slices_total=math.ceil(request.count / settings.slice_size),
        idempotency_key=request.idempotency_key,
        idempotency_fingerprint=None if request.idempotency_key is None else request.fingerprint,
    )
    session.add(job)
    session.flush()
    session.refresh(job)
    return job


def _insert_slices(session: Session, job: Job, size: int) -> None:
    session.execute(
        text(
            "INSERT INTO job_slices (job_id, user_id, slice_index, start_index, stop_index) "
            "SELECT :job_id, :user_id, n, n * :size, least((n + 1) * :size, :count) "
            "FROM generate_series(0, ceil(CAST(:count AS numeric) / :size)::int - 1) AS n"
        ),
        {"job_id": job.id, "user_id": job.user_id, "size": size, "count": job.requested},
    )


def _find_by_idempotency_key(sessions: SessionFactory, request: JobRequest) -> JobView | None:
    """The job this key already made, or None; IdempotencyKeyReused if asked differently."""
    if request.idempotency_key is None:
        return None
    with sessions() as session, session.begin():
        job = session.scalar(
            select(Job).where(
                Job.user_id == request.user_id, Job.idempotency_key == request.idempotency_key
            )
        )
        if job is None:
            return None
        stored = job.idempotency_fingerprint
        if stored is not None and stored != request.fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different request body",
                field="Idempotency-Key",
            )
        return _view(job)


def _view(job: Job) -> JobView:
    return JobView(
        id=job.id,
        user_id=job.user_id,
        status=JobStatus(job.status),
        provider=job.provider,
        requested=job.requested,
        successful=job.successful,
        failures=job.failures,
        slices_total=job.slices_total,
        error=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        updated_at=job.updated_at,
        cancelled=job.cancelled,
        cancel_requested_at=job.cancel_requested_at,
        waiting=job.waiting,
        retry_at=job.retry_at,
        orphans=job.orphans,
        failure_reasons=dict(job.failure_reasons or {}),
    )
