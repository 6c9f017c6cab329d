"""Turns: each turn serves the user at the front of the turn queue, then sends them back.

A turn pops the first user who may be served (core/turn_queue.py), claims that user's
oldest pending slices, up to `budget` items (at least one slice) and `TURN_SLICES`
slices, under a lease, and moves the user to the back of the queue while work remains
(or parks them until their first waiting slice may run, or removes them). So users take
turns round-robin, a small job costs a share of a turn instead of a turn, and nothing a
turn reads grows with what is queued behind the user it serves.

A user whose running slices already hold `TALLY_USER_CONCURRENCY` provider calls is sent
to the back and the next user is served; when every user a turn looks at is at their
limit, the turn is owed (worker/owed_turns.py) and sent again as a slice finishes. With
fair turns off, the user whose pending slice is oldest is served first.

A turn that finds no user it may serve ends, even when ready users are held: whoever holds
one sends the next turn for them. A turn serving a user sends its successor once it has
claimed (or owes one, or leaves no work behind), and a submit or a deferral that touched
the user's row sends one once committed. So the turns in flight stay as many as can claim,
whatever the number of jobs queued behind one user.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from core import transitions
from core.database import SessionFactory
from core.finish import notify_progress
from core.settings import Settings
from core.turn_queue import TURN_TAKEN
from worker import turn_queries as q
from worker.owed_turns import owe_turn
from worker.slices import SliceClaim, kept_keys

TURN_SLICES = 32  # slices one turn claims at most
USERS_PER_TURN = 8  # users a turn looks at while those before are at their limit


@dataclass(frozen=True)
class TurnPolicy:
    """How turns pick: fairly between users or oldest first, and how much each takes."""

    fair: bool
    user_limit: int  # provider calls in flight per user, over every worker
    slice_cap: int  # provider calls in flight per slice
    budget: int  # items one turn claims at most (a first slice is always taken)

    @classmethod
    def from_settings(cls, settings: Settings) -> TurnPolicy:
        """The policy the settings describe."""
        cap = min(settings.provider_concurrency, settings.user_concurrency)
        return cls(settings.fair_turns, settings.user_concurrency, cap, settings.slice_size)

    def lanes(self, size: int) -> int:
        """Provider calls a slice of `size` items may have in flight."""
        return min(size, self.slice_cap)


@dataclass(frozen=True)
class Turn:
    """What a turn claimed (all of one user's), and whether that user has more ready."""

    claims: list[SliceClaim]
    more: bool = False  # the user served has more ready work than this turn took


def take_turn(sessions: SessionFactory, policy: TurnPolicy, lease: float) -> Turn:
    """Claim the slices this turn runs, all of one user; none when none may run now."""
    with sessions() as session, session.begin():
        at_limit: uuid.UUID | None = None
        for looked in range(USERS_PER_TURN):
            user_id = session.execute(q.POP_USER if policy.fair else q.POP_OLDEST_USER).scalar()
            if user_id is None:
                break
            if not looked:  # a turn that serves nobody costs one statement and writes nothing
                _taken(session)
            served = _serve(session, user_id, policy, lease)
            if served is None:
                at_limit = at_limit or user_id
                continue
            claims, more = served
            if claims:
                return Turn(claims, more=more)
        if at_limit is not None:
            owe_turn(session, at_limit)
        return Turn([])


def _taken(session: Session) -> None:
    """Count the turn for the sweep's stall check; commit it without waiting for the disk
    (a claim lost with a crash of the database is claimed again: at-least-once calls)."""
    session.execute(text("SET LOCAL synchronous_commit = off"))
    session.execute(TURN_TAKEN)


def _serve(
    session: Session, user_id: uuid.UUID, policy: TurnPolicy, lease: float
) -> tuple[list[SliceClaim], bool] | None:
    """Claim the user's share of this turn and requeue them; with it, whether more of their
    work is ready. None when the user is at their limit."""
    ready = session.execute(q.READY_SLICES, {"user_id": user_id, "most": TURN_SLICES + 1}).all()
    if not ready:
        _requeue(session, user_id)
        return [], False
    held = session.execute(q.USER_LANES, {"user_id": user_id, "cap": policy.slice_cap})
    chosen = _within_budget(ready, policy, policy.user_limit - int(held.scalar_one()))
    if not chosen:
        session.execute(q.TO_THE_BACK, {"user_id": user_id})
        return None
    claims = _claim(session, user_id, chosen, policy, lease)
    more = len(ready) > len(chosen)
    if more:
        session.execute(q.TO_THE_BACK, {"user_id": user_id})
    else:
        _requeue(session, user_id)
    return claims, more


def _within_budget(ready: Sequence[Any], policy: TurnPolicy, room: int) -> list[Any]:
    """The first slices whose items fit the budget and whose calls fit the user's room."""
    chosen: list[Any] = []
    items = lanes = 0
    for row in ready[:TURN_SLICES]:
        size = row.stop_index - row.start_index
        if (chosen and items + size > policy.budget) or lanes + policy.lanes(size) > room:
            break
        chosen.append(row)
        items, lanes = items + size, lanes + policy.lanes(size)
    return chosen


def _claim(
    session: Session, user_id: uuid.UUID, chosen: list[Any], policy: TurnPolicy, lease: float
) -> list[SliceClaim]:
    keys = {
        "job_ids": [str(row.job_id) for row in chosen],
        "slice_indices": [row.slice_index for row in chosen],
    }
    claimed = session.execute(transitions.CLAIM, {**keys, "lease": lease}).all()
    started = session.execute(transitions.START_JOBS, {"job_ids": keys["job_ids"]}).scalars().all()
    notify_progress(session, *started)
    return [
        SliceClaim(
            row.job_id,
            row.slice_index,
            user_id,
            row.provider,
            row.start_index,
            row.stop_index,
            row.attempts,
            policy.lanes(row.stop_index - row.start_index),
            kept_keys(row.kept_keys),
        )
        for row in sorted(claimed, key=lambda r: (str(r.job_id), r.slice_index))
    ]


def _requeue(session: Session, user_id: uuid.UUID) -> None:
    """After the user's ready slices are taken: back of the queue, parked, or gone."""
    wake = session.execute(q.NEXT_WAKE, {"user_id": user_id}).scalar()
    if wake is None:
        session.execute(q.LEAVE, {"user_id": user_id})
    else:
        session.execute(q.PARK, {"user_id": user_id, "wake_at": wake})
