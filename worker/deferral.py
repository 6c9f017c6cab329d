"""Giving a waiting slice back: pending again, its attempt not counted, re-sent later."""

from __future__ import annotations

from core import transitions, turn_queue
from core.database import SessionFactory
from worker.slices import SliceClaim
from worker.waiting_status import set_waiting


def defer(sessions: SessionFactory, claim: SliceClaim, retry_at: float, reason: str) -> bool:
    """Return a slice this attempt owns to `pending` until `retry_at`; record why it waits."""
    with sessions() as session, session.begin():
        result = session.execute(
            transitions.DEFER,
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
