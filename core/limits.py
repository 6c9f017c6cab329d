"""Per-user limits on submits: unfinished jobs at once, and jobs accepted per minute.

Both are counted in PostgreSQL inside the submit's transaction, under the user's credits
row lock, so every web process sees the same figures and two submits of one user cannot
both take the last place.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.errors import TooManyRequests
from core.settings import Settings
from core.vocabulary import UNFINISHED_SQL

WINDOW_SECONDS = 60
UNFINISHED_RETRY_SECONDS = 5

# How many of the user's jobs are unfinished, counting no further than the limit.
UNFINISHED = text(
    "SELECT count(*) FROM (SELECT 1 FROM jobs "
    f"WHERE user_id = :user_id AND status IN {UNFINISHED_SQL} LIMIT :limit) AS unfinished"
)
# The limit-th newest job of the last minute, if there is one: the window is full until
# it is older than a minute.
WINDOW_FULL_UNTIL = text(
    "SELECT extract(epoch FROM created_at + make_interval(secs => :window) - now()) "
    "FROM jobs WHERE user_id = :user_id "
    "AND created_at > now() - make_interval(secs => :window) "
    "ORDER BY created_at DESC OFFSET :limit - 1 LIMIT 1"
)


@dataclass(frozen=True)
class UserLimits:
    """What one user may have going at once; 0 means no limit."""

    unfinished_jobs: int = 0
    submits_per_minute: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> UserLimits:
        """The limits the operator configured."""
        return cls(settings.user_max_unfinished_jobs, settings.user_submits_per_minute)


def check_submit(session: Session, user_id: uuid.UUID, limits: UserLimits) -> None:
    """Raise TooManyRequests when one more job would break a limit (inside the submit)."""
    if not (limits.unfinished_jobs or limits.submits_per_minute):
        return
    session.execute(
        text("SELECT 1 FROM user_credits WHERE user_id = :user_id FOR UPDATE"),
        {"user_id": user_id},
    )
    if limits.unfinished_jobs:
        params = {"user_id": user_id, "limit": limits.unfinished_jobs}
        if session.execute(UNFINISHED, params).scalar_one() >= limits.unfinished_jobs:
            raise TooManyRequests(
                f"at most {limits.unfinished_jobs} jobs may be unfinished at once; "
                "wait for one to finish",
                retry_after=UNFINISHED_RETRY_SECONDS,
            )
    if limits.submits_per_minute:
        params = {"user_id": user_id, "limit": limits.submits_per_minute, "window": WINDOW_SECONDS}
        full_for = session.execute(WINDOW_FULL_UNTIL, params).scalar()
        if full_for is not None:
            raise TooManyRequests(
                f"at most {limits.submits_per_minute} jobs may be submitted per minute",
                retry_after=max(1, math.ceil(float(full_for))),
            )
