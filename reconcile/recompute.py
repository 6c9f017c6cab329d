"""Recomputing business_centers from the vault, set-based."""

from __future__ import annotations

from sqlalchemy import text

from core.database import SessionFactory
from core.locks import hold_stats_lock

# business_centers = live vault rows minus what pending outbox rows will still add.
# Runs under the exclusive stats lock, so no apply is half-way while it reads.
RECOMPUTE = text(
    """
    WITH live AS (
        SELECT user_id, count(*) AS n FROM user_accounts
        WHERE deleted_at IS NULL GROUP BY user_id
    ), pending AS (
        SELECT user_id,
               sum(CASE WHEN topic = 'job.completed' THEN (payload->>'successful')::int
                        WHEN topic = 'vault.removed' THEN -(payload->>'count')::int
                        ELSE 0 END) AS delta
        FROM outbox WHERE applied_at IS NULL GROUP BY user_id
    ), users_seen AS (
        SELECT user_id FROM live UNION SELECT user_id FROM user_stats
    ), expected AS (
        SELECT u.user_id, coalesce(live.n, 0) - coalesce(pending.delta, 0) AS business_centers
        FROM users_seen u
        LEFT JOIN live USING (user_id)
        LEFT JOIN pending USING (user_id)
    ), changed AS (
        INSERT INTO user_stats AS s (user_id, business_centers)
        SELECT user_id, business_centers FROM expected ORDER BY user_id
        ON CONFLICT (user_id) DO UPDATE
            SET business_centers = excluded.business_centers, updated_at = now()
            WHERE s.business_centers IS DISTINCT FROM excluded.business_centers
        RETURNING s.user_id
    )
    SELECT count(*) AS changed FROM changed
    """
)


def recompute_business_centers(sessions: SessionFactory) -> int:
    """Set every user's business_centers from their vault; return how many rows changed."""
    with sessions() as session, session.begin():
        hold_stats_lock(session)
        return int(session.execute(RECOMPUTE).scalar_one())
