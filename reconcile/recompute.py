"""Recomputing business_centers from the vault, set-based."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.database import SessionFactory
from core.locks import hold_stats_lock

# What user_stats.business_centers must hold, per user, read from the source tables.
# The counter moves by outbox events: +successful when a job's completion is applied,
# -1 when a vault removal is applied. So it equals the live vault rows
#   - minus what pending outbox rows will still add (completions) or take (removals);
#   - minus every row (live or not) of a job still in flight: a running job writes vault
#     rows slice by slice, but its completion (which counts them) is not written yet.
# Once the outbox is applied and no job runs, this is exactly the live vault rows.
EXPECTED_BUSINESS_CENTERS = """
    live AS (
        SELECT user_id, count(*) AS n FROM user_accounts
        WHERE deleted_at IS NULL GROUP BY user_id
    ), pending AS (
        SELECT user_id,
               sum(CASE WHEN topic = 'job.completed' THEN (payload->>'successful')::int
                        WHEN topic = 'vault.removed' THEN -(payload->>'count')::int
                        ELSE 0 END) AS delta
        FROM outbox WHERE applied_at IS NULL GROUP BY user_id
    ), in_flight AS (
        SELECT a.user_id, count(*) AS n
        FROM jobs j JOIN user_accounts a ON a.job_id = j.id
        WHERE j.status IN ('queued', 'running') GROUP BY a.user_id
    ), expected_bc AS (
        SELECT u.user_id,
               coalesce(live.n, 0) - coalesce(pending.delta, 0) - coalesce(in_flight.n, 0)
                   AS business_centers
        FROM (SELECT user_id FROM live UNION SELECT user_id FROM user_stats) u
        LEFT JOIN live USING (user_id)
        LEFT JOIN pending USING (user_id)
        LEFT JOIN in_flight USING (user_id)
    )
"""

# Only rows whose value differs, or that are missing, are written (and so locked).
# Runs under the exclusive stats lock, so no apply is half-way while it reads.
RECOMPUTE = text(
    "WITH "
    + EXPECTED_BUSINESS_CENTERS
    + """
    , changed AS (
        SELECT e.user_id, e.business_centers
        FROM expected_bc e LEFT JOIN user_stats s USING (user_id)
        WHERE s.user_id IS NULL OR s.business_centers <> e.business_centers
    ), written AS (
        INSERT INTO user_stats AS s (user_id, business_centers)
        SELECT user_id, business_centers FROM changed ORDER BY user_id
        ON CONFLICT (user_id) DO UPDATE
            SET business_centers = excluded.business_centers, updated_at = now()
        RETURNING s.user_id
    )
    SELECT count(*) AS changed FROM written
    """
)


def without_jit(session: Session) -> None:
    """Turn JIT off for the caller's transaction.

    The planner's row estimates over these CTEs are far too high, which makes PostgreSQL
    spend seconds JIT-compiling statements that run in a fraction of that.
    """
    session.execute(text("SET LOCAL jit = off"))


def recompute_business_centers(sessions: SessionFactory) -> int:
    """Set every user's business_centers from their vault; return how many rows changed."""
    with sessions() as session, session.begin():
        hold_stats_lock(session)
        without_jit(session)
        return int(session.execute(RECOMPUTE).scalar_one())
