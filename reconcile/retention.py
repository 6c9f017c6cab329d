"""Retention: the leader deletes, in small batches, what only grows with history.

What goes: applied outbox rows (once the webhook fan-out has read them) and the slices of
finished jobs once TALLY_RETENTION_DAYS have passed since they were applied or finished;
heartbeat rows of daemons silent for a day; reconciliation reports beyond the newest
TALLY_REPORTS_KEPT (their drift rows first).
Jobs, the credit ledger and the vault are the users' records and are never deleted, nor are
the provider keys of their ambiguous slots (ambiguous_items, kept_keys: a row only per slot
whose calls went unanswered), which say what the provider may hold. No
check reads a pruned row: the report compares the counters with the finished jobs less
their pending outbox rows (reconcile/invariants.py), never with applied rows or slices.

Each batch is one short transaction that deletes at most TALLY_RETENTION_BATCH rows found
by an index range (migration 0010) and locked SKIP LOCKED, so it never waits for a row
another process holds; an apply locks only pending rows, so it never waits for a prune.
The pruner pauses between batches, as River's job cleaner and Oban's pruner do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import TextClause, text

from core.database import SessionFactory
from core.settings import Settings
from core.vocabulary import TERMINAL_SQL, SliceStatus

# Heartbeat rows of daemons silent this long are deleted.
HEARTBEAT_RETENTION_SECONDS = 86_400.0
# The pause between two batches of one run.
PAUSE_SECONDS = 0.05

OUTBOX = text(
    """
    DELETE FROM outbox WHERE id = ANY(ARRAY(
        SELECT id FROM outbox
        WHERE applied_at IS NOT NULL AND applied_at < now() - make_interval(secs => :age)
          -- rows the webhook fan-out has not read yet stay (webhooks/)
          AND id < coalesce((SELECT min(outbox_id) FROM webhook_position), 'Infinity'::numeric)
        ORDER BY applied_at LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ))
    """
)

SLICES = text(
    f"""
    DELETE FROM job_slices s USING (
        SELECT d.job_id, d.slice_index FROM job_slices d JOIN jobs j ON j.id = d.job_id
        WHERE d.status = '{SliceStatus.DONE}'
          AND d.finished_at < now() - make_interval(secs => :age)
          AND j.status IN {TERMINAL_SQL}
        ORDER BY d.finished_at LIMIT :limit
        FOR UPDATE OF d SKIP LOCKED
    ) old
    WHERE s.job_id = old.job_id AND s.slice_index = old.slice_index
    """
)

# The newest :kept reports stay: everything older than the :kept-th newest goes.
OLD_REPORT = "(SELECT id FROM reconcile_reports ORDER BY id DESC OFFSET :kept - 1 LIMIT 1)"

DRIFTS = text(
    f"""
    DELETE FROM reconcile_drifts WHERE id = ANY(ARRAY(
        SELECT id FROM reconcile_drifts WHERE report_id < {OLD_REPORT}
        ORDER BY report_id, id LIMIT :limit
    ))
    """
)

REPORTS = text(
    f"""
    DELETE FROM reconcile_reports WHERE id = ANY(ARRAY(
        SELECT id FROM reconcile_reports WHERE id < {OLD_REPORT}
        ORDER BY id LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ))
    """
)

HEARTBEATS = text(
    "DELETE FROM reconcile_heartbeats WHERE last_seen < now() - make_interval(secs => :silent)"
)


@dataclass(frozen=True)
class Policy:
    """How long rows are kept and how many a batch deletes."""

    age_seconds: float
    reports_kept: int
    batch: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        """The policy the operator configured."""
        age = settings.retention_days * 86_400
        return cls(age, settings.reports_kept, settings.retention_batch)


@dataclass(frozen=True)
class Pruned:
    """Rows one run deleted, per table."""

    outbox: int = 0
    slices: int = 0
    drifts: int = 0
    reports: int = 0
    heartbeats: int = 0

    @property
    def total(self) -> int:
        """Every row deleted."""
        return self.outbox + self.slices + self.drifts + self.reports + self.heartbeats


# Returns True when the run must stop (the daemon is stopping); waits between batches.
Pause = Callable[[], bool]


def prune(sessions: SessionFactory, policy: Policy, pause: Pause) -> Pruned:
    """Delete everything past retention, batch by batch; return how many rows went."""
    ages = {"age": policy.age_seconds, "limit": policy.batch}
    reports = {"kept": policy.reports_kept, "limit": policy.batch}
    return Pruned(
        outbox=prune_in_batches(sessions, OUTBOX, ages, pause),
        slices=prune_in_batches(sessions, SLICES, ages, pause),
        drifts=prune_in_batches(sessions, DRIFTS, reports, pause),
        reports=prune_in_batches(sessions, REPORTS, reports, pause),
        heartbeats=delete(sessions, HEARTBEATS, {"silent": HEARTBEAT_RETENTION_SECONDS}),
    )


def prune_in_batches(
    sessions: SessionFactory, statement: TextClause, values: Mapping[str, float], pause: Pause
) -> int:
    """Run one batch statement until it deletes less than a batch or the run must stop."""
    total = 0
    while True:
        deleted = delete(sessions, statement, values)
        total += deleted
        if deleted < values["limit"] or pause():
            return total


def delete(sessions: SessionFactory, statement: TextClause, values: Mapping[str, float]) -> int:
    """One short transaction of one DELETE; return how many rows it deleted."""
    with sessions() as session, session.begin():
        return int(session.execute(statement, values).rowcount)  # type: ignore[attr-defined]
