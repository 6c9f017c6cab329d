"""Repairing drift: moving each stored counter back to what its source tables say.

Which side is the truth:

- user_stats (requested, successful, failures, business_centers) is derived; the jobs,
  their outbox rows and the vault are the truth.
- A balance is the running total of the credit ledger; the ledger (append-only, at most
  one entry per job and kind) is the truth. Repair writes no ledger entry: an `adjust`
  entry would bend the ledger to agree with the damaged figure instead of restoring it.
  A balance that the ledger would make negative is left alone (and stays in the report
  as not repaired).
- Job drift (vault rows, net charge, outcomes) is damage to the source tables themselves;
  nothing holds a truer copy, so it is reported and never repaired.

The drift was found in a snapshot without a lock (reconcile/snapshot.py). A repair is a
short transaction of its own: it takes the stats lock exclusively (no apply is half-way
while it holds it), and moves each counter by (expected - actual) only if the outbox
position is still the one the check saw and the counter still holds the figure the check
read. Applies, finishes and removals move a counter and its source together, so that
difference is the damage itself; a counter someone else changed meanwhile is left for
the next report.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.database import SessionFactory
from core.locks import hold_stats_lock
from core.stats import STAT_NAMES
from reconcile.invariants import Drift
from reconcile.snapshot import OutboxPosition, outbox_position

# The field name is one of STAT_NAMES, never input. A missing row holds 0 for every field.
MOVE_STATS_FIELD = """
    INSERT INTO user_stats AS s (user_id, {field}) VALUES (:user_id, :delta)
    ON CONFLICT (user_id) DO UPDATE SET {field} = s.{field} + excluded.{field}, updated_at = now()
        WHERE s.{field} = :actual
    RETURNING s.user_id
"""

# Concurrent holds and releases move balance and ledger together, so the difference the
# check measured is still the difference now: apply it as a delta.
MOVE_BALANCE = text(
    "UPDATE user_credits SET balance = balance + :delta, updated_at = now() "
    "WHERE user_id = CAST(:user_id AS uuid) AND balance + :delta >= 0 RETURNING user_id"
)


def is_repairable(drift: Drift) -> bool:
    """Whether repair knows how to correct this kind of drift."""
    return drift.subject == "user" and (drift.field in STAT_NAMES or drift.field == "balance")


def repair(
    sessions: SessionFactory, position: OutboxPosition, drifts: list[Drift]
) -> list[bool] | None:
    """Correct what can be corrected; per drift whether it was, or None if the outbox moved."""
    with sessions() as session, session.begin():
        hold_stats_lock(session)
        if outbox_position(session) != position:
            return None
        return [repair_one(session, drift) if is_repairable(drift) else False for drift in drifts]


def repair_one(session: Session, drift: Drift) -> bool:
    """Move one user's stats field or balance by its drift, inside the caller's transaction."""
    values: dict[str, object] = {
        "user_id": drift.subject_id,
        "delta": drift.expected - drift.actual,
        "actual": drift.actual,
    }
    if drift.field == "balance":
        return session.execute(MOVE_BALANCE, values).first() is not None
    statement = text(MOVE_STATS_FIELD.format(field=drift.field))
    return session.execute(statement, values).first() is not None
