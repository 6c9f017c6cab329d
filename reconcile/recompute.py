"""Recomputing the vault-read counter (business_centers) from the vault, set-based."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.database import SessionFactory
from core.locks import hold_stats_lock
from core.stats import VAULT_STATS
from core.vocabulary import UNFINISHED_SQL

# The counter read from the vault (business_centers); core/stats.py defines it.
(VAULT_STAT,) = VAULT_STATS

# What that counter must hold, per user, read from the source tables. It moves by outbox
# events (+successful when a job's completion is applied, -count when a vault removal
# is applied), so it equals the live vault rows
#   - minus what pending outbox rows will still add (completions) or take (removals);
#   - minus every row (live or not) of a job still in flight: a running job writes vault
#     rows slice by slice, but its completion (which counts them) is not written yet.
# Once the outbox is applied and no job runs, this is exactly the live vault rows.
EXPECTED_BUSINESS_CENTERS = f"""
    live AS (
        SELECT user_id, count(*) AS n FROM user_accounts
        WHERE deleted_at IS NULL GROUP BY user_id
    ), pending AS (
        SELECT user_id, sum({VAULT_STAT.delta_sql()}) AS delta
        FROM outbox WHERE applied_at IS NULL GROUP BY user_id
    ), in_flight AS (
        SELECT a.user_id, count(*) AS n
        FROM jobs j JOIN user_accounts a ON a.job_id = j.id
        WHERE j.status IN {UNFINISHED_SQL} GROUP BY a.user_id
    ), expected_bc AS (
        SELECT u.user_id,
               coalesce(live.n, 0) - coalesce(pending.delta, 0) - coalesce(in_flight.n, 0)
                   AS {VAULT_STAT.name}
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
    + f"""
    , changed AS (
        SELECT e.user_id, e.{VAULT_STAT.name}
        FROM expected_bc e LEFT JOIN user_stats s USING (user_id)
        WHERE s.user_id IS NULL OR s.{VAULT_STAT.name} <> e.{VAULT_STAT.name}
    ), written AS (
        INSERT INTO user_stats AS s (user_id, {VAULT_STAT.name})
        SELECT user_id, {VAULT_STAT.name} FROM changed ORDER BY user_id
        ON CONFLICT (user_id) DO UPDATE
            SET {VAULT_STAT.name} = excluded.{VAULT_STAT.name}, updated_at = now()
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
