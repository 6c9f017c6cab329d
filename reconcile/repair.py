"""Repairing drift: moving each stored counter back to what its source tables say.

Which side is the truth:

- user_stats (requested, successful, failures, business_centers) is derived; the jobs,
  their applied outbox rows and the vault are the truth. Repair sets the field to the
  expected figure, if it still holds the figure the report read.
- A balance is the running total of the credit ledger; the ledger (append-only, at most
  one entry per job and kind) is the truth. Repair moves the balance by (ledger sum -
  balance) and writes no ledger entry: an `adjust` entry would bend the ledger to agree
  with the damaged figure instead of restoring it. A balance that the ledger would make
  negative is left alone (and stays in the report as not repaired).
- Job drift (vault rows, net charge, outcomes) is damage to the source tables themselves;
  nothing holds a truer copy, so it is reported and never repaired.

Every function here runs inside the report's transaction, which holds the stats lock.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.stats import STAT_NAMES
from reconcile.invariants import Drift

# The field name is one of STAT_NAMES, never input.
SET_STATS_FIELD = """
    INSERT INTO user_stats AS s (user_id, {field}) VALUES (:user_id, :expected)
    ON CONFLICT (user_id) DO UPDATE SET {field} = excluded.{field}, updated_at = now()
        WHERE s.{field} = :actual
    RETURNING s.user_id
"""

# Concurrent holds and releases move balance and ledger together, so the difference the
# report measured is still the difference now: apply it as a delta.
MOVE_BALANCE = text(
    "UPDATE user_credits SET balance = balance + :delta, updated_at = now() "
    "WHERE user_id = CAST(:user_id AS uuid) AND balance + :delta >= 0 RETURNING user_id"
)


def is_repairable(drift: Drift) -> bool:
    """Whether repair knows how to correct this kind of drift."""
    return drift.subject == "user" and (drift.field in STAT_NAMES or drift.field == "balance")


def repair(session: Session, drifts: list[Drift]) -> list[bool]:
    """Correct each drift that can be corrected; return, per drift, whether it was."""
    return [repair_one(session, drift) if is_repairable(drift) else False for drift in drifts]


def repair_one(session: Session, drift: Drift) -> bool:
    """Correct one user's stats field or balance inside the caller's transaction."""
    if drift.field == "balance":
        statement = MOVE_BALANCE
        values: dict[str, object] = {
            "delta": drift.expected - drift.actual,
            "user_id": drift.subject_id,
        }
    else:
        statement = text(SET_STATS_FIELD.format(field=drift.field))
        values = {"user_id": drift.subject_id, "expected": drift.expected, "actual": drift.actual}
    return session.execute(statement, values).first() is not None
