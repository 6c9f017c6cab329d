"""PostgreSQL advisory lock keys shared by every process."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

# Appliers take this lock shared; recompute and reports take it exclusive so that they
# read user_stats and the outbox at a moment when no apply is half-way.
STATS_APPLY_LOCK = 7_300_001


def share_stats_lock(session: Session) -> None:
    """Hold the stats lock shared until the transaction ends."""
    session.execute(text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": STATS_APPLY_LOCK})


def hold_stats_lock(session: Session) -> None:
    """Hold the stats lock exclusively until the transaction ends."""
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": STATS_APPLY_LOCK})
