"""Applying pending outbox rows to user_stats, exactly once."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import text

from core.database import SessionFactory
from core.locks import share_stats_lock
from core.metrics import observe_apply

# One statement: lock a batch (skipping rows another applier holds), mark it applied,
# sum it per user and upsert the sums in user order. Effect and mark commit together.
APPLY_BATCH = text(
    """
    WITH marked AS (
        UPDATE outbox SET applied_at = now()
        WHERE id = ANY(ARRAY(
            SELECT id FROM outbox
            WHERE applied_at IS NULL
            ORDER BY id
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
        ))
        RETURNING user_id, topic, payload
    ), sums AS (
        SELECT user_id,
               sum(CASE WHEN topic = 'job.completed'
                        THEN (payload->>'requested')::int ELSE 0 END) AS requested,
               sum(CASE WHEN topic = 'job.completed'
                        THEN (payload->>'successful')::int ELSE 0 END) AS successful,
               sum(CASE WHEN topic = 'job.completed'
                        THEN (payload->>'failures')::int ELSE 0 END) AS failures,
               sum(CASE WHEN topic = 'job.completed' THEN (payload->>'successful')::int
                        WHEN topic = 'vault.removed' THEN -(payload->>'count')::int
                        ELSE 0 END) AS business_centers
        FROM marked GROUP BY user_id
    ), upserted AS (
        INSERT INTO user_stats AS s (user_id, requested, successful, failures, business_centers)
        SELECT user_id, requested, successful, failures, business_centers
        FROM sums ORDER BY user_id
        ON CONFLICT (user_id) DO UPDATE SET
            requested = s.requested + excluded.requested,
            successful = s.successful + excluded.successful,
            failures = s.failures + excluded.failures,
            business_centers = s.business_centers + excluded.business_centers,
            updated_at = now()
        RETURNING s.user_id
    )
    SELECT (SELECT count(*) FROM marked) AS rows, (SELECT count(*) FROM upserted) AS users
    """
)


@dataclass(frozen=True)
class AppliedBatch:
    """How many outbox rows one transaction applied, over how many users."""

    rows: int
    users: int


def apply_batch(sessions: SessionFactory, limit: int = 5000) -> AppliedBatch:
    """Apply up to `limit` pending outbox rows in one transaction."""
    started = time.perf_counter()
    with sessions() as session, session.begin():
        share_stats_lock(session)
        row = session.execute(APPLY_BATCH, {"limit": limit}).one()
    observe_apply(int(row.rows), time.perf_counter() - started)
    return AppliedBatch(rows=int(row.rows), users=int(row.users))


def apply_pending(sessions: SessionFactory, limit: int = 5000, max_batches: int = 100) -> int:
    """Apply batches until none is left (or max_batches ran); return the rows applied."""
    total = 0
    for _ in range(max_batches):
        applied = apply_batch(sessions, limit)
        total += applied.rows
        if applied.rows < limit:
            break
    return total
