"""A job's slices: claiming one under a lease, and recording its outcomes once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.cancel import ending
from core.crypto import SecretBox
from core.database import SessionFactory
from core.finish import FinishedJob, finish_locked_job, notify_progress
from core.vocabulary import UNFINISHED_SQL, JobStatus, SliceStatus
from worker.fanout import ItemOutcome
from worker.outcome_counts import add_outcome_counts
from worker.owed_turns import repay_turn

# A slice's accounts travel as one array per column: building them costs the worker far
# less than one parameter set per row. Slots a redelivery already stored are skipped.
STORE_ACCOUNTS = text(
    "INSERT INTO user_accounts (user_id, job_id, item_index, provider, external_id, "
    "username, secret_encrypted, metadata) "
    "SELECT CAST(:user_id AS uuid), CAST(:job_id AS uuid), item_index, :provider, "
    "external_id, username, secret, meta "
    "FROM unnest(CAST(:indices AS int[]), CAST(:external_ids AS text[]), "
    "CAST(:usernames AS text[]), CAST(:secrets AS bytea[]), CAST(:metadata AS jsonb[])) "
    "AS t(item_index, external_id, username, secret, meta) "
    "ON CONFLICT (job_id, item_index) DO NOTHING"
)


@dataclass(frozen=True)
class SliceClaim:
    """A slice this worker may process until its lease expires."""

    job_id: uuid.UUID
    slice_index: int
    user_id: uuid.UUID
    provider: str
    start_index: int
    stop_index: int
    attempt: int
    lanes: int = 0  # provider calls this attempt may have in flight; 0: the process's bound

    @property
    def indices(self) -> range:
        """The job slots this slice covers."""
        return range(self.start_index, self.stop_index)


@dataclass(frozen=True)
class SliceResult:
    """What recording a slice did: counts, and the job if this slice finished it."""

    recorded: bool
    successful: int = 0
    failures: int = 0
    finished: FinishedJob | None = None
    cancelled: int = 0
    owed_turn: tuple[uuid.UUID, int] | None = None  # a turn to send (worker/owed_turns.py)


def claim(
    sessions: SessionFactory, job_id: uuid.UUID, slice_index: int, lease_seconds: float
) -> SliceClaim | None:
    """Take a pending slice, or one whose lease expired; None if it is not ours to run."""
    with sessions() as session, session.begin():
        return claim_in(session, job_id, slice_index, lease_seconds)


def claim_in(
    session: Session, job_id: uuid.UUID, slice_index: int, lease_seconds: float
) -> SliceClaim | None:
    """Claim one slice inside the caller's transaction (see `claim`)."""
    row = session.execute(
        text(
            f"UPDATE job_slices s SET status = '{SliceStatus.RUNNING}', "
            "attempts = s.attempts + 1, "
            "lease_expires_at = now() + make_interval(secs => :lease) "
            "FROM jobs j WHERE j.id = s.job_id AND s.job_id = :job_id "
            f"AND s.slice_index = :slice_index AND j.status IN {UNFINISHED_SQL} "
            "AND j.cancel_requested_at IS NULL "
            f"AND (s.status = '{SliceStatus.PENDING}' "
            f"     OR (s.status = '{SliceStatus.RUNNING}' AND s.lease_expires_at < now())) "
            "RETURNING j.user_id, j.provider, j.status AS job_status, "
            "s.start_index, s.stop_index, s.attempts"
        ),
        {"job_id": job_id, "slice_index": slice_index, "lease": lease_seconds},
    ).first()
    if row is None:
        return None
    if row.job_status == JobStatus.QUEUED:
        _mark_job_running(session, job_id)
    return SliceClaim(
        job_id,
        slice_index,
        row.user_id,
        row.provider,
        row.start_index,
        row.stop_index,
        row.attempts,
    )


def extend_lease(sessions: SessionFactory, claim: SliceClaim, lease_seconds: float) -> bool:
    """Push the lease forward while this attempt still owns the slice."""
    with sessions() as session, session.begin():
        result = session.execute(
            text(
                "UPDATE job_slices SET lease_expires_at = now() + make_interval(secs => :lease) "
                "WHERE job_id = :job_id AND slice_index = :slice_index "
                f"AND status = '{SliceStatus.RUNNING}' AND attempts = :attempt"
            ),
            {
                "lease": lease_seconds,
                "job_id": claim.job_id,
                "slice_index": claim.slice_index,
                "attempt": claim.attempt,
            },
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def give_back(sessions: SessionFactory, claim: SliceClaim) -> bool:
    """Return a slice this attempt still owns to `pending`, so a retry can claim it at once."""
    with sessions() as session, session.begin():
        result = session.execute(
            text(
                f"UPDATE job_slices SET status = '{SliceStatus.PENDING}', lease_expires_at = NULL "
                "WHERE job_id = :job_id AND slice_index = :slice_index "
                f"AND status = '{SliceStatus.RUNNING}' AND attempts = :attempt"
            ),
            {"job_id": claim.job_id, "slice_index": claim.slice_index, "attempt": claim.attempt},
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def record(
    sessions: SessionFactory, claim: SliceClaim, outcomes: Sequence[ItemOutcome], box: SecretBox
) -> SliceResult:
    """Store a slice's accounts and counts, and finish the job if it was the last slice.

    Items without an outcome were never attempted (the job was cancelled): they count as
    cancelled.
    """
    with sessions() as session, session.begin():
        if not _lock_unfinished_slice(session, claim):
            return SliceResult(recorded=False)
        created = _store_accounts(session, claim, outcomes, box)
        failures = sum(1 for o in outcomes if o.account is None)
        counts = SliceCounts(created, failures, len(claim.indices) - len(outcomes))
        _close_slice(session, claim, counts)
        add_outcome_counts(session, claim.job_id, outcomes)
        finished = _count_slice_in_job(session, claim.job_id, counts)
        notify_progress(session, claim.job_id)
        owed = (claim.job_id, claim.slice_index) if repay_turn(session) else None
        return SliceResult(True, created, failures, finished, counts.cancelled, owed)


def _mark_job_running(session: Session, job_id: uuid.UUID) -> None:
    started = session.execute(
        text(
            f"UPDATE jobs SET status = '{JobStatus.RUNNING}', started_at = now(), "
            f"updated_at = now() WHERE id = :job_id AND status = '{JobStatus.QUEUED}'"
        ),
        {"job_id": job_id},
    )
    if started.rowcount:  # type: ignore[attr-defined]
        notify_progress(session, job_id)


def _lock_unfinished_slice(session: Session, claim: SliceClaim) -> bool:
    row = session.execute(
        text(
            "SELECT 1 FROM job_slices WHERE job_id = :job_id AND slice_index = :slice_index "
            f"AND status <> '{SliceStatus.DONE}' FOR UPDATE"
        ),
        {"job_id": claim.job_id, "slice_index": claim.slice_index},
    ).first()
    return row is not None


def _store_accounts(
    session: Session, claim: SliceClaim, outcomes: Sequence[ItemOutcome], box: SecretBox
) -> int:
    accounts = [(o.item_index, o.account) for o in outcomes if o.account is not None]
    if not accounts:
        return 0
    columns = {
        "user_id": claim.user_id,
        "job_id": claim.job_id,
        "provider": claim.provider,
        "indices": [index for index, _ in accounts],
        "external_ids": [account.external_id for _, account in accounts],
        "usernames": [account.username for _, account in accounts],
        "secrets": [box.seal(account.secret) for _, account in accounts],
        "metadata": [json.dumps(account.metadata) for _, account in accounts],
    }
    inserted = session.execute(STORE_ACCOUNTS, columns)
    return int(inserted.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class SliceCounts:
    """What a slice's items came to: created, failed, never attempted."""

    successful: int
    failures: int
    cancelled: int


def _close_slice(session: Session, claim: SliceClaim, counts: SliceCounts) -> None:
    session.execute(
        text(
            f"UPDATE job_slices SET status = '{SliceStatus.DONE}', successful = :successful, "
            "failures = :failures, cancelled = :cancelled, finished_at = now(), "
            "lease_expires_at = NULL WHERE job_id = :job_id AND slice_index = :slice_index"
        ),
        {
            "successful": counts.successful,
            "failures": counts.failures,
            "cancelled": counts.cancelled,
            "job_id": claim.job_id,
            "slice_index": claim.slice_index,
        },
    )


def _count_slice_in_job(
    session: Session, job_id: uuid.UUID, counts: SliceCounts
) -> FinishedJob | None:
    """Add the slice to the job under its row lock; the last slice finishes the job."""
    row = session.execute(
        text(
            "UPDATE jobs SET successful = successful + :successful, "
            "failures = failures + :failures, cancelled = cancelled + :cancelled, "
            "slices_done = slices_done + 1, updated_at = now() WHERE id = :job_id "
            "RETURNING slices_done, slices_total, cancel_requested_at, cancelled"
        ),
        {
            "successful": counts.successful,
            "failures": counts.failures,
            "cancelled": counts.cancelled,
            "job_id": job_id,
        },
    ).one()
    if row.slices_done < row.slices_total:
        return None
    status = ending(row.cancel_requested_at is not None, row.cancelled)
    return finish_locked_job(session, job_id, status)
