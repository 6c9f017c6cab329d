"""Outbox rows the apply set aside: counting, listing and applying them again.

A quarantined row keeps `applied_at` NULL (so the business_centers recompute still counts
it as pending) and carries `quarantined_at` and the database's `error`. Once the cause is
fixed, `retry` applies it through the same statement as the apply, exactly once: the row is
locked and marked applied with its effect. Its quarantine columns stay as history.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text

from core.database import SessionFactory
from core.locks import share_stats_lock
from outbox.apply import apply_rows

# Quarantined rows are pending rows set aside: the pending partial index finds them
# (outbox/backlog.py counts them).
WHERE_QUARANTINED = "applied_at IS NULL AND quarantined_at IS NOT NULL"
LIST = text(
    "SELECT id, topic, key, user_id, payload, created_at, quarantined_at, error "
    f"FROM outbox WHERE {WHERE_QUARANTINED} ORDER BY id LIMIT :limit"
)
LOCK = text(
    f"SELECT id, user_id FROM outbox WHERE {WHERE_QUARANTINED} "
    "AND (CAST(:ids AS bigint[]) IS NULL OR id = ANY(CAST(:ids AS bigint[]))) "
    "ORDER BY id FOR UPDATE SKIP LOCKED"
)


@dataclass(frozen=True)
class QuarantinedRow:
    """One outbox row set aside, with why."""

    id: int
    topic: str
    key: str
    user_id: uuid.UUID
    payload: dict[str, Any]
    created_at: datetime
    quarantined_at: datetime
    error: str


@dataclass(frozen=True)
class Retried:
    """What a retry did: the rows applied now, and those the database refused again."""

    applied: list[int]
    still_quarantined: list[int]


def list_quarantined(sessions: SessionFactory, limit: int = 100) -> list[QuarantinedRow]:
    """The oldest quarantined rows, at most `limit`."""
    with sessions() as session, session.begin():
        rows = session.execute(LIST, {"limit": limit}).all()
    return [QuarantinedRow(**row._mapping) for row in rows]


def retry(sessions: SessionFactory, ids: Sequence[int] | None = None) -> Retried:
    """Apply quarantined rows again (those of `ids`, or all), each exactly once."""
    with sessions() as session, session.begin():
        share_stats_lock(session)
        wanted = None if ids is None else list(ids)
        picked = [(r.id, r.user_id) for r in session.execute(LOCK, {"ids": wanted})]
        outcome = apply_rows(session, picked)
    return Retried(applied=outcome.applied, still_quarantined=outcome.set_aside)
