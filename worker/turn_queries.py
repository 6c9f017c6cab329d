"""The statements of a turn: pop the first user, claim their oldest slices, requeue them.

Each reads through an index in the order it needs (`ix_turn_queue_position`,
`ix_job_slices_ready`, `ix_job_slices_running`) and stops at what it takes, so a turn
costs the same however many users, jobs and slices are queued behind it.
"""

from __future__ import annotations

from sqlalchemy import text

from core.vocabulary import SliceStatus

# The first user who may be served now and whom no other turn is serving.
POP_USER = text(
    "SELECT user_id FROM turn_queue WHERE wake_at <= now() "
    "ORDER BY position LIMIT 1 FOR UPDATE SKIP LOCKED"
)

# Oldest job first, whoever's (TALLY_FAIR_TURNS=false): the user whose first pending slice
# is oldest, waited for when another turn serves them (one queue, first in first out). It
# reads every queued user: a mode to compare against, not for a crowd.
POP_OLDEST_USER = text(
    "SELECT q.user_id FROM turn_queue q WHERE q.wake_at <= now() "
    "ORDER BY (SELECT min(s.enqueued_at) FROM job_slices s "
    f"          WHERE s.user_id = q.user_id AND s.status = '{SliceStatus.PENDING}'), q.position "
    "LIMIT 1 FOR UPDATE"
)

# A user's oldest pending slices that may run now (a slice waiting for its provider
# carries its retry time in `enqueued_at`), read in `ix_job_slices_ready`'s order.
READY_SLICES = text(
    f"""
    SELECT s.job_id, s.slice_index, s.start_index, s.stop_index
    FROM job_slices s
    WHERE s.user_id = :user_id AND s.status = '{SliceStatus.PENDING}' AND s.enqueued_at <= now()
    ORDER BY s.enqueued_at, s.job_id, s.slice_index
    LIMIT :most
    FOR UPDATE SKIP LOCKED
    """
)

# The provider calls a user's running slices may have in flight.
USER_LANES = text(
    "SELECT coalesce(sum(least(stop_index - start_index, :cap)), 0) FROM job_slices "
    f"WHERE user_id = :user_id AND status = '{SliceStatus.RUNNING}'"
)


# When the user's first waiting slice may run (None: nothing waits).
NEXT_WAKE = text(
    "SELECT enqueued_at FROM job_slices "
    f"WHERE user_id = :user_id AND status = '{SliceStatus.PENDING}' "
    "ORDER BY enqueued_at LIMIT 1"
)

TO_THE_BACK = text(
    "UPDATE turn_queue SET position = nextval('turn_positions'), wake_at = '-infinity' "
    "WHERE user_id = :user_id"
)
PARK = text("UPDATE turn_queue SET wake_at = :wake_at WHERE user_id = :user_id")
LEAVE = text("DELETE FROM turn_queue WHERE user_id = :user_id")
