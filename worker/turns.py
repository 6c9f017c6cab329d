"""Fair turns: each slice message is a turn at the fairest slice waiting, not at its own.

One message is still sent per slice (and the sweep re-sends for stale slices), so there
are at least as many turns as slices to run; a duplicate turn finds nothing and costs a
query. A turn takes the next waiting (or lease-expired) slice of the job whose user has
the fewest slices running, oldest job first, skipping slices other turns are taking
(`FOR UPDATE SKIP LOCKED`). A user whose running slices already hold
`TALLY_USER_CONCURRENCY` provider calls is passed over until one of them finishes. A turn
that finds slices waiting but claims none is owed, and sent again when a running slice
finishes (worker/owed_turns.py). With fair turns off, a turn takes the oldest job's next
slice, whoever's it is.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.database import SessionFactory
from core.settings import Settings
from worker import slices
from worker.owed_turns import owe_turn
from worker.turn_queries import (
    FAIREST_JOBS,
    NEXT_SLICE,
    OLDEST_JOBS,
    TRY_USER_LOCK,
    USER_LANES,
    USER_LOCK,
)

TURN_LOCK = 7_300_002  # advisory lock class of the per-user turn locks
JOBS_PER_LOOK = 50  # jobs a turn reads at once, in turn order


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
    with sessions() as session, session.begin():
        # A claim lost with a crash of the database is claimed again: at-least-once calls.
        session.execute(text("SET LOCAL synchronous_commit = off"))
        claim = _claim_fairest(session, policy, lease_seconds)
    return None if claim is None else dataclasses.replace(claim, lanes=policy.lanes(claim))


def _claim_fairest(
    session: Session, policy: TurnPolicy, lease_seconds: float
) -> slices.SliceClaim | None:
    limits = {"cap": policy.slice_cap, "limit": policy.user_limit}
    passed_over: list[str] = []  # users found at their limit once their lock was held
    while True:
        known = len(passed_over)
        jobs = _jobs_in_order(session, policy, limits, passed_over)
        for job in jobs:
            if str(job.user_id) in passed_over:
                continue
            picked = session.execute(NEXT_SLICE, {**limits, "job_id": job.job_id}).first()
            if picked is None:
                continue  # its slices are being taken by other turns
            held = _lanes_held(session, job.user_id, limits, wait=not passed_over)
            if held is None or held + picked.lanes > policy.user_limit:
                passed_over.append(str(job.user_id))  # at its limit, or another turn's now
                continue
            claim = slices.claim_in(session, job.job_id, picked.slice_index, lease_seconds)
            if claim is not None:
                return claim
        if len(jobs) < JOBS_PER_LOOK or len(passed_over) == known:  # read every job there is
            if jobs:
                # Slices wait, but their users are at their limit or other turns hold them
                # (and may pass them over): this turn is owed, so none of them is left out.
                owe_turn(session, uuid.UUID(passed_over[0]) if passed_over else jobs[0].user_id)
            return None


def _jobs_in_order(
    session: Session, policy: TurnPolicy, limits: dict[str, int], passed_over: list[str]
) -> list[Any]:
    order = FAIREST_JOBS if policy.fair else OLDEST_JOBS
    given = {**limits, "passed_over": passed_over, "jobs": JOBS_PER_LOOK}
    return list(session.execute(order, given).all())


def _lanes_held(
    session: Session, user_id: uuid.UUID, limits: dict[str, int], *, wait: bool
) -> int | None:
    """Take the user's turn lock (until commit) and read the calls its running slices hold.

    None when `wait` is false and another turn holds the lock.
    """
    lock = {"key": TURN_LOCK, "user_id": user_id}
    if wait:
        session.execute(USER_LOCK, lock)
    elif not session.execute(TRY_USER_LOCK, lock).scalar_one():
        return None
    return int(session.execute(USER_LANES, {**limits, "user_id": user_id}).scalar_one())
