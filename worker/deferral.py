"""Giving a waiting slice back: pending again, its attempt not counted, re-sent later."""

from __future__ import annotations

from sqlalchemy import text

from core import turn_queue
from core.database import SessionFactory
from core.vocabulary import SliceStatus
from worker.slices import SliceClaim
from worker.waiting_status import set_waiting

# `enqueued_at` is set to when the slice may run again, so the sweep leaves it alone until
# then; the attempt is handed back, so waiting never uses up TALLY_SLICE_MAX_ATTEMPTS.
DEFER = text(
    f"UPDATE job_slices SET status = '{SliceStatus.PENDING}', lease_expires_at = NULL, "
    "attempts = attempts - 1, enqueued_at = to_timestamp(:retry_at) "
    "WHERE job_id = :job_id AND slice_index = :slice_index "
    f"AND status = '{SliceStatus.RUNNING}' AND attempts = :attempt"
)


def defer(sessions: SessionFactory, claim: SliceClaim, retry_at: float, reason: str) -> bool:
    """Return a slice this attempt owns to `pending` until `retry_at`; record why it waits."""
    with sessions() as session, session.begin():
        result = session.execute(
            DEFER,
            {
                "retry_at": retry_at,
                "job_id": claim.job_id,
                "slice_index": claim.slice_index,
                "attempt": claim.attempt,
            },
        )
        set_waiting(session, claim.job_id, reason, retry_at)
        turn_queue.arrive(session, claim.user_id)  # parked until then by the next turn
        return bool(result.rowcount)  # type: ignore[attr-defined]
