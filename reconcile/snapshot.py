"""One consistent, read-only view of the database for a check, and the outbox position it saw.

A check runs in a REPEATABLE READ, READ ONLY transaction: every statement of it reads the
same snapshot, so an apply that commits meanwhile (its outbox marks and its user_stats
increments commit together) is either wholly visible or not at all, and the check needs
no lock that an apply would wait for. The outbox position names the outbox as that
snapshot saw it; a repair applies its corrections only while the position is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

# The newest row written, and the pending rows (by the partial index over them). A new
# row raises `newest` or adds to `pending`; an apply takes rows out of `pending`.
POSITION = text(
    "SELECT (SELECT coalesce(max(id), 0) FROM outbox) AS newest, "
    "count(*) AS pending, coalesce(sum(id), 0) AS pending_ids "
    "FROM outbox WHERE applied_at IS NULL"
)


@dataclass(frozen=True)
class OutboxPosition:
    """How far the outbox was written and applied, as one transaction saw it."""

    newest: int
    pending: int
    pending_ids: int


def begin_snapshot(session: Session) -> None:
    """Make the caller's fresh transaction one read-only snapshot; JIT off for its checks."""
    session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
    # The planner's row estimates over the checks' CTEs are far too high, which makes
    # PostgreSQL spend seconds JIT-compiling statements that run in a fraction of that.
    session.execute(text("SET LOCAL jit = off"))


def outbox_position(session: Session) -> OutboxPosition:
    """The outbox position inside the caller's transaction."""
    row = session.execute(POSITION).one()
    return OutboxPosition(int(row.newest), int(row.pending), int(row.pending_ids))
