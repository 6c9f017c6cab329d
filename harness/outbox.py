"""Applying the whole outbox at once, as the daemon's apply loop does over several rounds."""

from __future__ import annotations

from core.database import SessionFactory
from outbox.apply import apply_batch


def apply_pending(sessions: SessionFactory, limit: int = 5000, max_batches: int = 100) -> int:
    """Apply batches until none is left (or max_batches ran); return the rows applied."""
    total = 0
    for _ in range(max_batches):
        applied = apply_batch(sessions, limit)
        total += applied.rows
        if applied.rows < limit:
            break
    return total
