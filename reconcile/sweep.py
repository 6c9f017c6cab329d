"""The stale-work sweep: take back slices whose worker died, and send turns when they stall.

A slice whose lease ran out (its worker was killed or frozen) goes back to `pending`, its
user back into the turn queue, and a turn is sent for each such user. Turns are anonymous
and each turn that claims work sends the next, so the only other loss is a chain of
turns that ended while users still wait (a message lost with the broker, a worker killed
between its claim and its send): when users are ready and no turn was taken for
`stale` seconds, the sweep sends turns again. Neither step reads more than it returns.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import text

from core import turn_queue
from core.cancel import settle_abandoned
from core.database import SessionFactory
from core.vocabulary import SliceStatus

Enqueue = Callable[[int], int]  # sends that many turn messages; returns how many

STALLED_TURNS = 8  # turns sent at most when turns stalled (each sends the next)
TAKE_BACK_LIMIT = 5000  # expired leases taken back per sweep


@dataclass(frozen=True)
class Swept:
    """What a sweep (or every sweep since a report) did: jobs and slices taken back."""

    jobs: int = 0
    slices: int = 0
    turns: int = 0  # turn messages sent

    def __add__(self, other: Swept) -> Swept:
        return Swept(self.jobs + other.jobs, self.slices + other.slices, self.turns + other.turns)


@dataclass
class TurnClock:
    """The turns-taken counter as the sweep last saw it, to tell when turns stalled."""

    stale_seconds: float
    seen: int | None = None
    moved_at: float = field(default_factory=time.monotonic)
    nudged_at: float = float("-inf")

    def stalled(self, taken: int) -> bool:
        """Whether no turn was taken for `stale_seconds`, and none was sent since then."""
        now = time.monotonic()
        if taken != self.seen:
            self.seen, self.moved_at = taken, now
            return False
        quiet = min(now - self.moved_at, now - self.nudged_at)
        return quiet >= self.stale_seconds

    def nudged(self) -> None:
        """Note that turns were just sent."""
        self.nudged_at = time.monotonic()


TAKE_BACK = text(
    f"""
    UPDATE job_slices s SET status = '{SliceStatus.PENDING}', lease_expires_at = NULL
    FROM (
        SELECT job_id, slice_index FROM job_slices
        WHERE status = '{SliceStatus.RUNNING}' AND lease_expires_at < now()
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ) expired
    WHERE s.job_id = expired.job_id AND s.slice_index = expired.slice_index
    RETURNING s.job_id, s.user_id
    """
)


@dataclass(frozen=True)
class TakenBack:
    """Slices whose lease expired, now pending again, and the turns their users need."""

    jobs: set[uuid.UUID]
    slices: int
    turns: int


def take_back_expired(sessions: SessionFactory, limit: int = TAKE_BACK_LIMIT) -> TakenBack:
    """Return slices whose lease expired to `pending` and their users to the turn queue."""
    with sessions() as session, session.begin():
        rows = session.execute(TAKE_BACK, {"limit": limit}).all()
        users = {row.user_id for row in rows}
        turn_queue.arrive_all(session, users)
    return TakenBack({row.job_id for row in rows}, len(rows), len(users))


def ready_users(sessions: SessionFactory, most: int) -> tuple[int, int]:
    """Turns taken so far, and how many users (up to `most`) may be served now."""
    with sessions() as session, session.begin():
        taken = int(session.execute(turn_queue.TURNS_TAKEN).scalar_one())
        ready = int(session.execute(turn_queue.READY_USERS, {"most": most}).scalar_one())
    return taken, ready


def sweep(sessions: SessionFactory, enqueue: Enqueue, clock: TurnClock) -> Swept:
    """Settle abandoned cancels, take back expired leases, and send the turns needed."""
    settle_abandoned(sessions)
    taken_back = take_back_expired(sessions)
    turns = enqueue(taken_back.turns) if taken_back.turns else 0
    taken, ready = ready_users(sessions, STALLED_TURNS)
    if ready and clock.stalled(taken):
        turns += enqueue(ready)
        clock.nudged()
    return Swept(len(taken_back.jobs), taken_back.slices, turns)
