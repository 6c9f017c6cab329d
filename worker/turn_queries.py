"""The statements a turn runs: which jobs go first, their next slice, a user's calls held.

A slice may run when it is pending (and not waiting for its provider), or running under a
lease that expired (its worker died), unless its job's cancel was asked; a user's running
slices hold `least(items, cap)` provider calls each.
"""

from __future__ import annotations

from sqlalchemy import TextClause, text

from core.vocabulary import UNFINISHED_SQL, SliceStatus

# A pending slice given back to wait for its provider (worker/deferral.py) carries its
# retry time in `enqueued_at`: no turn takes it before then.
CLAIMABLE = (
    f"((s.status = '{SliceStatus.PENDING}' AND s.enqueued_at <= now()) "
    f"OR (s.status = '{SliceStatus.RUNNING}' AND s.lease_expires_at < now()))"
)

# The calls one user's running (lease-held) slices may have in flight.
USER_LANES = text(
    f"""
    SELECT coalesce(sum(least(r.stop_index - r.start_index, :cap)), 0)
    FROM job_slices r JOIN jobs rj ON rj.id = r.job_id
    WHERE rj.user_id = :user_id AND r.status = '{SliceStatus.RUNNING}'
      AND r.lease_expires_at >= now()
    """
)

# A user's turns are claimed one at a time, so each sees the calls its predecessors hold.
# A turn waits for the first user's lock it needs; holding one, it only tries others (a
# turn never waits while it holds a user's lock, so turns cannot deadlock).
USER_LOCK = text("SELECT pg_advisory_xact_lock(:key, hashtext(CAST(:user_id AS text)))")
TRY_USER_LOCK = text("SELECT pg_try_advisory_xact_lock(:key, hashtext(CAST(:user_id AS text)))")

FAIREST_FIRST = "coalesce(u.slices, 0), j.created_at, j.id"
OLDEST_FIRST = "j.created_at, j.id"


def jobs_in_turn_order(order: str) -> TextClause:
    """Unfinished jobs with a slice that may run, in turn order."""
    return text(
        f"""
        WITH running AS (
            SELECT rj.user_id, count(*) AS slices
            FROM job_slices r JOIN jobs rj ON rj.id = r.job_id
            WHERE r.status = '{SliceStatus.RUNNING}' AND r.lease_expires_at >= now()
            GROUP BY rj.user_id
        )
        SELECT j.id AS job_id, j.user_id
        FROM jobs j LEFT JOIN running u ON u.user_id = j.user_id
        WHERE j.status IN {UNFINISHED_SQL} AND j.cancel_requested_at IS NULL
          AND NOT (j.user_id = ANY(CAST(:passed_over AS uuid[])))
          AND EXISTS (SELECT 1 FROM job_slices s WHERE s.job_id = j.id AND {CLAIMABLE})
        ORDER BY {order}
        LIMIT :jobs
        """
    )


FAIREST_JOBS = jobs_in_turn_order(FAIREST_FIRST)
OLDEST_JOBS = jobs_in_turn_order(OLDEST_FIRST)

# A job's first slice that may run and that no other turn is taking right now.
NEXT_SLICE = text(
    f"""
    SELECT s.slice_index, least(s.stop_index - s.start_index, :cap) AS lanes
    FROM job_slices s
    WHERE s.job_id = :job_id AND {CLAIMABLE}
    ORDER BY s.slice_index
    LIMIT 1
    FOR UPDATE SKIP LOCKED
    """
)
