"""The stats card: each `user_stats` counter defined once, and reading a user's card.

A counter moves only when an outbox row is applied. Its definition says what each topic
adds to it (a payload figure, with a sign) and what the counter must equal when read
from the source tables: the sum of that figure over the user's finished jobs, or the
user's live vault rows. The apply statement (outbox/apply.py), the business_centers
recompute and the invariant checker (reconcile/) are built from these definitions.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select

from core.database import SessionFactory
from core.schema import UserStats
from core.vocabulary import Topic


class Source(StrEnum):
    """Where the true value of a counter is read from."""

    JOBS = "jobs"  # the sum of a job figure over the user's finished, applied jobs
    VAULT = "vault"  # the user's live vault rows


@dataclass(frozen=True)
class Effect:
    """What applying one outbox row of `topic` adds to a counter."""

    topic: Topic
    figure: str  # the payload key (for job.completed, also the jobs column it copies)
    sign: int = 1

    def sql(self) -> str:
        """The addend as SQL over an outbox row's `payload`."""
        value = f"(payload->>'{self.figure}')::bigint"
        return value if self.sign > 0 else f"-{value}"


@dataclass(frozen=True)
class Stat:
    """One `user_stats` column: how outbox rows move it and where its truth lies."""

    name: str
    effects: tuple[Effect, ...]
    source: Source = Source.JOBS

    def delta_sql(self) -> str:
        """What one outbox row adds to this counter, as an SQL expression."""
        branches = " ".join(f"WHEN topic = '{e.topic}' THEN {e.sql()}" for e in self.effects)
        return f"CASE {branches} ELSE 0 END"

    @property
    def job_figure(self) -> str:
        """The jobs column a jobs-sourced counter sums (its job.completed figure)."""
        for effect in self.effects:
            if effect.topic is Topic.JOB_COMPLETED:
                return effect.figure
        raise ValueError(f"{self.name} has no job.completed effect")


# A cancelled job is a finished job like the others: it adds its whole `requested` and what
# it created and failed; its items never attempted (the job's `cancelled`) are in no counter.
STATS: tuple[Stat, ...] = (
    Stat("requested", (Effect(Topic.JOB_COMPLETED, "requested"),)),
    Stat("successful", (Effect(Topic.JOB_COMPLETED, "successful"),)),
    Stat("failures", (Effect(Topic.JOB_COMPLETED, "failures"),)),
    Stat(
        "business_centers",
        (Effect(Topic.JOB_COMPLETED, "successful"), Effect(Topic.VAULT_REMOVED, "count", -1)),
        source=Source.VAULT,
    ),
)
STAT_NAMES: tuple[str, ...] = tuple(stat.name for stat in STATS)
JOB_STATS: tuple[Stat, ...] = tuple(s for s in STATS if s.source is Source.JOBS)
VAULT_STATS: tuple[Stat, ...] = tuple(s for s in STATS if s.source is Source.VAULT)


@dataclass(frozen=True)
class StatsView:
    """A user's counters, by name, in the order of STATS."""

    user_id: uuid.UUID
    counters: dict[str, int]


def get_stats(sessions: SessionFactory, user_id: uuid.UUID) -> StatsView:
    """Return the user's stats; zeros until the first job is applied."""
    columns = [UserStats.__table__.c[name] for name in STAT_NAMES]
    with sessions() as session, session.begin():
        row = session.execute(select(*columns).where(UserStats.user_id == user_id)).first()
    values = (0,) * len(STAT_NAMES) if row is None else tuple(row)
    return StatsView(user_id, dict(zip(STAT_NAMES, (int(v) for v in values), strict=True)))
