"""How far behind the outbox apply is: pending rows, the age of the oldest, rows set aside."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

# One pass over the pending partial index: quarantined rows are pending rows set aside.
BACKLOG = text(
    "SELECT count(*) FILTER (WHERE quarantined_at IS NULL) AS rows, "
    "coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE quarantined_at IS NULL)),"
    " 0) AS oldest, "
    "count(*) FILTER (WHERE quarantined_at IS NOT NULL) AS quarantined "
    "FROM outbox WHERE applied_at IS NULL"
)


@dataclass(frozen=True)
class Backlog:
    """Outbox rows waiting to be applied, how long the oldest has waited (seconds), and rows
    the apply set aside (quarantined: they wait for an operator's `tally outbox retry`)."""

    rows: int
    oldest_seconds: float
    quarantined: int = 0


def outbox_backlog(session: Session) -> Backlog:
    """Measure the outbox backlog inside the caller's transaction."""
    row = session.execute(BACKLOG).one()
    return Backlog(
        rows=int(row.rows),
        oldest_seconds=max(0.0, float(row.oldest)),
        quarantined=int(row.quarantined),
    )
