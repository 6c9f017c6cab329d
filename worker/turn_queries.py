"""The statements of a turn: pop the first user, claim their oldest slices, requeue them.

Each reads through an index in the order it needs (`ix_turn_queue_position`,
`ix_job_slices_ready`, `ix_job_slices_running`) and stops at what it takes, so a turn
costs the same however many users, jobs and slices are queued behind it.
"""

from __future__ import annotations

from sqlalchemy import text

from core.vocabulary import UNFINISHED_SQL, JobStatus, SliceStatus

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

# Claims the slices chosen, unless their job finished or its cancel was asked meanwhile (a
# cancel settles pending slices at once; one given back after it waits for the sweep).
CLAIM_SLICES = text(
    f"""
    UPDATE job_slices s SET status = '{SliceStatus.RUNNING}', attempts = s.attempts + 1,
        lease_expires_at = now() + make_interval(secs => :lease)
    FROM unnest(CAST(:job_ids AS uuid[]), CAST(:slice_indices AS int[])) AS t(job_id, slice_index),
        jobs j
    WHERE s.job_id = t.job_id AND s.slice_index = t.slice_index AND j.id = s.job_id
      AND j.status IN {UNFINISHED_SQL} AND j.cancel_requested_at IS NULL
    RETURNING s.job_id, s.slice_index, s.start_index, s.stop_index, s.attempts, j.provider
    """
)

START_JOBS = text(
    f"UPDATE jobs SET status = '{JobStatus.RUNNING}', started_at = now(), updated_at = now() "
    f"WHERE id = ANY(CAST(:job_ids AS uuid[])) AND status = '{JobStatus.QUEUED}' "
    "RETURNING id"
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
