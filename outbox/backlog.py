"""How far behind the outbox apply is: pending rows and the age of the oldest."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

BACKLOG = text(
    "SELECT count(*) AS rows, "
    "coalesce(extract(epoch FROM now() - min(created_at)), 0) AS oldest "
    "FROM outbox WHERE applied_at IS NULL"
)


@dataclass(frozen=True)
class Backlog:
    """Outbox rows not applied yet, and how long the oldest has waited (seconds)."""

    rows: int
    oldest_seconds: float


def outbox_backlog(session: Session) -> Backlog:
    """Measure the outbox backlog inside the caller's transaction."""
    row = session.execute(BACKLOG).one()
    return Backlog(rows=int(row.rows), oldest_seconds=max(0.0, float(row.oldest)))
