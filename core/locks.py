"""PostgreSQL advisory lock keys shared by every process."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

# Appliers take this lock shared; a report's repair takes it exclusive for a moment, so
# that it sees user_stats and the outbox when no apply is half-way (reconcile/repair.py).
STATS_APPLY_LOCK = 7_300_001


def share_stats_lock(session: Session) -> None:
    """Hold the stats lock shared until the transaction ends."""
    session.execute(text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": STATS_APPLY_LOCK})


def hold_stats_lock(session: Session) -> None:
    """Hold the stats lock exclusively until the transaction ends."""
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": STATS_APPLY_LOCK})
