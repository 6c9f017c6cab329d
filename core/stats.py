"""Reading a user's stats card."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from core.database import SessionFactory
from core.schema import UserStats


@dataclass(frozen=True)
class StatsView:
    """The four counters existing frontends show."""

    user_id: uuid.UUID
    requested: int
    successful: int
    failures: int
    business_centers: int


def get_stats(sessions: SessionFactory, user_id: uuid.UUID) -> StatsView:
    """Return the user's stats; zeros until the first job is applied."""
    with sessions() as session, session.begin():
        row = session.get(UserStats, user_id)
    if row is None:
        return StatsView(user_id, 0, 0, 0, 0)
    return StatsView(user_id, row.requested, row.successful, row.failures, row.business_centers)
