"""Applying pending outbox rows to user_stats, exactly once; a row that cannot apply is set aside.

A batch is applied by one statement in a savepoint. When the database refuses it (a value
out of range, a broken constraint: DataError, IntegrityError), the same rows are applied one
by one, each in its own savepoint, and each row refused again is quarantined with the
database's error: every other row, of every user, still applies in the same transaction.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from core import tracing
from core.database import SessionFactory
from core.locks import share_stats_lock
from core.metrics import observe_apply
from core.stats import STAT_NAMES, STATS

logger = logging.getLogger(__name__)

# The apply's span links to at most this many of the traces whose rows it applied.
MAX_LINKS = 64

# What the database says when one row's effect cannot be applied: not a passing fault.
UNAPPLIABLE = (DataError, IntegrityError)
MAX_ERROR_LENGTH = 1000

# Pending rows the apply may take: neither applied nor set aside, oldest first.
PICK_BATCH = """
    SELECT id FROM outbox
    WHERE applied_at IS NULL AND quarantined_at IS NULL
    ORDER BY id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
"""
# One row not applied yet (quarantined or not); a row another applier holds is skipped.
PICK_ONE = "SELECT id FROM outbox WHERE id = :id AND applied_at IS NULL FOR UPDATE SKIP LOCKED"


def _apply_statement(pick: str) -> str:
    sums = ", ".join(f"sum({stat.delta_sql()}) AS {stat.name}" for stat in STATS)
    columns = ", ".join(STAT_NAMES)
    increments = ", ".join(f"{name} = s.{name} + excluded.{name}" for name in STAT_NAMES)
    return f"""
    WITH marked AS (
        UPDATE outbox SET applied_at = now()
        WHERE id = ANY(ARRAY({pick}))
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
APPLY_BATCH = text(_apply_statement(PICK_BATCH))
APPLY_ONE = text(_apply_statement(PICK_ONE))
LOCK_BATCH = text(PICK_BATCH.replace("SELECT id", "SELECT id, user_id", 1))
QUARANTINE = text(
    "UPDATE outbox SET quarantined_at = now(), error = :error WHERE id = :id AND applied_at IS NULL"
)


@dataclass(frozen=True)
class AppliedBatch:
    """How many outbox rows one transaction applied, over how many users, and set aside."""

    rows: int
    users: int
    quarantined: int = 0


@dataclass(frozen=True)
class RowByRow:
    """The rows applied one by one, and those set aside."""

    applied: list[int]
    set_aside: list[int]
    users: int


def apply_batch(sessions: SessionFactory, limit: int = 5000) -> AppliedBatch:
    """Apply up to `limit` pending outbox rows in one transaction, setting aside any that fail."""
    started, started_ns = time.perf_counter(), time.time_ns()
    traces: list[str] = []
    with sessions() as session, session.begin():
        share_stats_lock(session)
        try:
            with session.begin_nested():
                row = session.execute(APPLY_BATCH, {"limit": limit}).one()
            applied = AppliedBatch(rows=int(row.rows), users=int(row.users))
            traces = list(row.traces)
        except UNAPPLIABLE:
            picked = session.execute(LOCK_BATCH, {"limit": limit}).all()
            outcome = apply_rows(session, [(r.id, r.user_id) for r in picked])
            applied = AppliedBatch(len(outcome.applied), outcome.users, len(outcome.set_aside))
    observe_apply(applied.rows, time.perf_counter() - started)
    if applied.rows:  # an empty poll every half second is not worth a span
        attributes = {"rows": applied.rows, "users": applied.users}
        tracing.record_span("tally.apply", started_ns, attributes, traces)
    return applied


def apply_rows(session: Session, rows: Sequence[tuple[int, uuid.UUID]]) -> RowByRow:
    """Apply the given (id, user) outbox rows one by one inside the caller's transaction.

    A row the database refuses is quarantined with its error; a row already applied, or
    held by another applier, is left alone.
    """
    applied: list[int] = []
    set_aside: list[int] = []
    users: set[uuid.UUID] = set()
    for outbox_id, user_id in rows:
        try:
            with session.begin_nested():
                done = session.execute(APPLY_ONE, {"id": outbox_id}).one()
        except UNAPPLIABLE as exc:
            error = _reason(exc)
            session.execute(QUARANTINE, {"id": outbox_id, "error": error})
            logger.warning("outbox row %s set aside: %s", outbox_id, error)
            set_aside.append(outbox_id)
            continue
        if done.rows:
            applied.append(outbox_id)
            users.add(user_id)
    return RowByRow(applied, set_aside, len(users))


def _reason(exc: DataError | IntegrityError) -> str:
    """The database's own message (first line), without SQLAlchemy's statement dump."""
    message = str(exc.orig).strip().splitlines()
    return (message[0] if message else type(exc.orig).__name__)[:MAX_ERROR_LENGTH]
