"""Applying pending outbox rows to user_stats, exactly once."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import text

from core import tracing
from core.database import SessionFactory
from core.locks import share_stats_lock
from core.metrics import observe_apply
from core.stats import STAT_NAMES, STATS

# The apply's span links to at most this many of the traces whose rows it applied.
MAX_LINKS = 64


def _apply_statement() -> str:
    sums = ", ".join(f"sum({stat.delta_sql()}) AS {stat.name}" for stat in STATS)
    columns = ", ".join(STAT_NAMES)
    increments = ", ".join(f"{name} = s.{name} + excluded.{name}" for name in STAT_NAMES)
    return f"""
    WITH marked AS (
        UPDATE outbox SET applied_at = now()
        WHERE id = ANY(ARRAY(
            SELECT id FROM outbox
            WHERE applied_at IS NULL
            ORDER BY id
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
        ))
        RETURNING user_id, topic, payload, trace_context
    ), sums AS (
        SELECT user_id, {sums}
        FROM marked GROUP BY user_id
    ), upserted AS (
        INSERT INTO user_stats AS s (user_id, {columns})
        SELECT user_id, {columns}
        FROM sums ORDER BY user_id
        ON CONFLICT (user_id) DO UPDATE SET {increments}, updated_at = now()
        RETURNING s.user_id
    )
    SELECT (SELECT count(*) FROM marked) AS rows, (SELECT count(*) FROM upserted) AS users,
           ARRAY(SELECT trace_context FROM marked WHERE trace_context IS NOT NULL
                 LIMIT {MAX_LINKS}) AS traces
    """


# One statement: lock a batch (skipping rows another applier holds), mark it applied,
# sum each counter's effects per user (core/stats.py) and upsert the sums in user order.
# Effect and mark commit together.
APPLY_BATCH = text(_apply_statement())


@dataclass(frozen=True)
class AppliedBatch:
    """How many outbox rows one transaction applied, over how many users."""

    rows: int
    users: int


def apply_batch(sessions: SessionFactory, limit: int = 5000) -> AppliedBatch:
    """Apply up to `limit` pending outbox rows in one transaction."""
    started, started_ns = time.perf_counter(), time.time_ns()
    with sessions() as session, session.begin():
        share_stats_lock(session)
        row = session.execute(APPLY_BATCH, {"limit": limit}).one()
    observe_apply(int(row.rows), time.perf_counter() - started)
    if row.rows:  # an empty poll every half second is not worth a span
        attributes = {"rows": row.rows, "users": row.users}
        tracing.record_span("tally.apply", started_ns, attributes, row.traces)
    return AppliedBatch(rows=int(row.rows), users=int(row.users))
