"""Fair turns: each slice message is a turn at the fairest slice waiting, not at its own.

One message is still sent per slice (and the sweep re-sends for stale slices), so there
are at least as many turns as slices to run; a duplicate turn finds nothing and costs one
query. A turn takes, under one advisory lock, the pending (or lease-expired) slice whose
user has the fewest slices running, oldest job first; a user whose running slices already
hold `TALLY_USER_CONCURRENCY` provider calls is skipped until one of them finishes, and
the worker that records it then sends that user a turn of its own (`owed_turn`).
With fair turns off, a turn takes the oldest slice waiting, whoever's it is.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.database import SessionFactory
from core.settings import Settings
from core.vocabulary import UNFINISHED_SQL, SliceStatus
from worker import slices

# A user's turns are claimed one at a time (advisory lock TURN_LOCK, hash of the user),
# so each sees the calls its predecessors claimed and the limit holds exactly.
TURN_LOCK = 7_300_002
USER_LOCK = text("SELECT pg_advisory_xact_lock(:key, hashtext(CAST(:user_id AS text)))")

# Provider calls a user's running (lease-held) slices may have in flight, per user.
USER_RUNNING = f"""
    SELECT j.user_id, count(*) AS slices,
           sum(least(r.stop_index - r.start_index, :cap)) AS lanes
    FROM job_slices r JOIN jobs j ON j.id = r.job_id
    WHERE r.status = '{SliceStatus.RUNNING}' AND r.lease_expires_at >= now()
    GROUP BY j.user_id
"""

# The calls one user's running slices may have in flight, read under its lock.
USER_LANES = text(
    f"""
    SELECT coalesce(sum(least(r.stop_index - r.start_index, :cap)), 0)
    FROM job_slices r JOIN jobs j ON j.id = r.job_id
    WHERE j.user_id = :user_id AND r.status = '{SliceStatus.RUNNING}'
      AND r.lease_expires_at >= now()
    """
)

FAIREST_FIRST = "coalesce(u.slices, 0), j.created_at, s.job_id, s.slice_index"
OLDEST_FIRST = "j.created_at, s.job_id, s.slice_index"


def _pick(order: str) -> str:
    return f"""
    WITH running AS ({USER_RUNNING})
    SELECT s.job_id, s.slice_index, j.user_id,
           least(s.stop_index - s.start_index, :cap) AS lanes
    FROM job_slices s JOIN jobs j ON j.id = s.job_id
    LEFT JOIN running u ON u.user_id = j.user_id
    WHERE j.status IN {UNFINISHED_SQL}
      AND NOT (j.user_id = ANY(CAST(:passed_over AS uuid[])))
      AND (s.status = '{SliceStatus.PENDING}'
           OR (s.status = '{SliceStatus.RUNNING}' AND s.lease_expires_at < now()))
      AND coalesce(u.lanes, 0) + least(s.stop_index - s.start_index, :cap) <= :limit
    ORDER BY {order}
    LIMIT 1
    FOR UPDATE OF s SKIP LOCKED
    """


PICK_FAIREST = text(_pick(FAIREST_FIRST))
PICK_OLDEST = text(_pick(OLDEST_FIRST))

# The user's oldest waiting slice, when its running slices hold so many calls that a
# full slice might not have fitted before the one just recorded finished.
OWED = text(
    f"""
    SELECT s.job_id, s.slice_index
    FROM job_slices s JOIN jobs j ON j.id = s.job_id
    WHERE j.user_id = :user_id AND j.status IN {UNFINISHED_SQL}
      AND s.status = '{SliceStatus.PENDING}'
      AND ({USER_LANES.text}) + 2 * :cap > :limit
    ORDER BY j.created_at, s.slice_index
    LIMIT 1
    """
)


@dataclass(frozen=True)
class TurnPolicy:
    """How turns pick: fairly between users or oldest first, and each user's call limit."""

    fair: bool
    user_limit: int  # provider calls in flight per user, over every worker
    slice_cap: int  # provider calls in flight per slice

    @classmethod
    def from_settings(cls, settings: Settings) -> TurnPolicy:
        """The policy the settings describe."""
        cap = min(settings.provider_concurrency, settings.user_concurrency)
        return cls(settings.fair_turns, settings.user_concurrency, cap)

    def lanes(self, claim: slices.SliceClaim) -> int:
        """Provider calls a claimed slice may have in flight."""
        return min(len(claim.indices), self.slice_cap)


def take_turn(
    sessions: SessionFactory, policy: TurnPolicy, lease_seconds: float
) -> slices.SliceClaim | None:
    """Claim the slice this turn should run; None when no slice may run now."""
    pick = PICK_FAIREST if policy.fair else PICK_OLDEST
    passed_over: list[str] = []  # users found at their limit once their lock was held
    with sessions() as session, session.begin():
        # A claim lost with a crash of the database is claimed again: at-least-once calls.
        session.execute(text("SET LOCAL synchronous_commit = off"))
        while True:
            limits = {"cap": policy.slice_cap, "limit": policy.user_limit}
            picked = session.execute(pick, {**limits, "passed_over": passed_over}).first()
            if picked is None:
                return None
            if _fits(session, picked.user_id, picked.lanes, limits):
                break
            passed_over.append(str(picked.user_id))
        claim = slices.claim_in(session, picked.job_id, picked.slice_index, lease_seconds)
    if claim is None:
        return None
    return dataclasses.replace(claim, lanes=policy.lanes(claim))


def _fits(session: Session, user_id: uuid.UUID, lanes: int, limits: dict[str, int]) -> bool:
    """Under the user's lock (until commit), whether its running slices leave room."""
    session.execute(USER_LOCK, {"key": TURN_LOCK, "user_id": user_id})
    held = session.execute(USER_LANES, {**limits, "user_id": user_id}).scalar_one()
    return int(held) + lanes <= limits["limit"]


def owed_turn(
    sessions: SessionFactory, policy: TurnPolicy, user_id: uuid.UUID
) -> tuple[uuid.UUID, int] | None:
    """The slice to send a turn for after one of the user's slices finished, if one is owed.

    A turn that found every waiting slice of its users at their limit ran nothing; the
    first of those users' slices to finish makes up for it.
    """
    limits = {"cap": policy.slice_cap, "limit": policy.user_limit, "user_id": user_id}
    with sessions() as session, session.begin():
        row = session.execute(OWED, limits).first()
    return None if row is None else (row.job_id, row.slice_index)
