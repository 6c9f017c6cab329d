"""Recomputing the vault-read counter (business_centers) from the vault, set-based."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import text

from core.database import SessionFactory
from core.stats import VAULT_STATS
from core.vocabulary import UNFINISHED_SQL
from reconcile.snapshot import begin_snapshot

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

# In one snapshot: each user whose stored figure differs from what the vault says, or who
# has no stats row yet.
DRIFT = text(
    "WITH "
    + EXPECTED_BUSINESS_CENTERS
    + f"""
    SELECT e.user_id, e.{VAULT_STAT.name} AS expected,
           coalesce(s.{VAULT_STAT.name}, 0) AS actual, s.user_id IS NULL AS missing
    FROM expected_bc e LEFT JOIN user_stats s USING (user_id)
    WHERE s.user_id IS NULL OR s.{VAULT_STAT.name} <> e.{VAULT_STAT.name}
    ORDER BY e.user_id
    """
)

# One batch of corrections, rows locked first in user order (as the apply locks them, so
# the two cannot deadlock); a row is moved only if it still holds the figure the check read.
LOCK = text(
    "SELECT user_id FROM user_stats WHERE user_id = ANY(CAST(:users AS uuid[])) "
    "ORDER BY user_id FOR UPDATE"
)
CORRECT = text(
    f"""
    UPDATE user_stats s SET {VAULT_STAT.name} = s.{VAULT_STAT.name} + c.delta, updated_at = now()
    FROM unnest(CAST(:users AS uuid[]), CAST(:deltas AS bigint[]), CAST(:actuals AS bigint[]))
        AS c(user_id, delta, actual)
    WHERE s.user_id = c.user_id AND s.{VAULT_STAT.name} = c.actual
    RETURNING s.user_id
    """
)

# Users who had no stats row: created with their figure, unless an apply created it since.
CREATE = text(
    f"""
    INSERT INTO user_stats (user_id, {VAULT_STAT.name})
    SELECT user_id, n
    FROM unnest(CAST(:users AS uuid[]), CAST(:values AS bigint[])) AS c(user_id, n)
    ORDER BY user_id
    ON CONFLICT (user_id) DO NOTHING
    RETURNING user_id
    """
)

# Users corrected per transaction: each batch holds its rows' locks for a moment only.
BATCH = 1000


@dataclass(frozen=True)
class Correction:
    """One user's business_centers: what the vault says, and what was stored."""

    user_id: uuid.UUID
    expected: int
    actual: int
    missing: bool


def find_corrections(sessions: SessionFactory) -> list[Correction]:
    """Every user whose business_centers differs from the vault, in one snapshot, no lock."""
    with sessions() as session, session.begin():
        begin_snapshot(session)
        rows = session.execute(DRIFT).all()
    return [Correction(r.user_id, int(r.expected), int(r.actual), bool(r.missing)) for r in rows]


def correct(sessions: SessionFactory, batch: list[Correction]) -> int:
    """Apply one batch of corrections in a short transaction; return how many rows moved."""
    existing = [c for c in batch if not c.missing]
    created = [c for c in batch if c.missing]
    users = [c.user_id for c in existing]
    with sessions() as session, session.begin():
        session.execute(LOCK, {"users": users})
        moved = session.execute(
            CORRECT,
            {
                "users": users,
                "deltas": [c.expected - c.actual for c in existing],
                "actuals": [c.actual for c in existing],
            },
        ).all()
        made = session.execute(
            CREATE,
            {"users": [c.user_id for c in created], "values": [c.expected for c in created]},
        ).all()
    return len(moved) + len(made)


def recompute_business_centers(sessions: SessionFactory) -> int:
    """Set every user's business_centers from their vault; return how many rows changed.

    The check reads one snapshot with no lock; the corrections follow in batches of short
    transactions. A job finishing, a vault removal and an apply each move a user's figure
    and the vault's view of it together, so the difference is the damage; a row an apply
    changed since the check is left for the next recompute.
    """
    found = find_corrections(sessions)
    return sum(correct(sessions, found[i : i + BATCH]) for i in range(0, len(found), BATCH))
