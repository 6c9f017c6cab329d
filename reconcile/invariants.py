"""The invariant checker: recompute every counter from the source tables, list differences.

Used by the test suites and by the reconciliation report alike. The checks run in one
read-only REPEATABLE READ snapshot (reconcile/snapshot.py) and take no lock: an apply
commits its outbox marks and its increments together, so the snapshot sees both or
neither, and applies go on while a check runs. A Drift's `expected` is what the source
tables say (finished jobs less what their pending outbox rows will still add, the vault,
the ledger); `actual` is the stored counter (user_stats, user_credits.balance) or, for a
job, what its rows add up to. Nothing read here is ever pruned (reconcile/retention.py):
applied outbox rows and slices are not consulted.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.database import SessionFactory
from core.stats import JOB_STATS, STAT_NAMES, VAULT_STATS
from core.vocabulary import TERMINAL_SQL, JobStatus
from reconcile.recompute import EXPECTED_BUSINESS_CENTERS
from reconcile.snapshot import begin_snapshot


@dataclass(frozen=True)
class Drift:
    """One figure that differs from what the source tables say it must be."""

    subject: str  # "user" or "job"
    subject_id: str
    field: str
    expected: int
    actual: int


def _expected_stats() -> str:
    """user_stats beside what each counter's source says, for users where any differs."""
    job_sums = ", ".join(f"sum(j.{s.job_figure}) AS {s.name}" for s in JOB_STATS)
    pending_sums = ", ".join(f"sum({s.delta_sql()}) AS {s.name}" for s in JOB_STATS)
    expected = {s.name: f"coalesce(f.{s.name}, 0) - coalesce(p.{s.name}, 0)" for s in JOB_STATS}
    expected |= {s.name: f"coalesce(b.{s.name}, 0)" for s in VAULT_STATS}
    pairs = ", ".join(
        f"{expected[name]} AS exp_{name}, coalesce(s.{name}, 0) AS {name}" for name in STAT_NAMES
    )
    differs = " OR ".join(f"{expected[name]} <> coalesce(s.{name}, 0)" for name in STAT_NAMES)
    return f"""
    WITH {EXPECTED_BUSINESS_CENTERS}
    , finished AS (
        SELECT j.user_id, {job_sums}
        FROM jobs j WHERE j.status IN {TERMINAL_SQL}
        GROUP BY j.user_id
    ), pending_jobs AS (
        SELECT user_id, {pending_sums}
        FROM outbox WHERE applied_at IS NULL GROUP BY user_id
    ), everyone AS (
        SELECT user_id FROM finished UNION SELECT user_id FROM expected_bc
    )
    SELECT e.user_id, {pairs}
    FROM everyone e
    LEFT JOIN finished f USING (user_id)
    LEFT JOIN pending_jobs p USING (user_id)
    LEFT JOIN expected_bc b USING (user_id)
    LEFT JOIN user_stats s USING (user_id)
    WHERE {differs}
    """


# Invariants 1 and 4: each counter against its source (core/stats.py): job figures over
# finished jobs less what their pending (unapplied) outbox rows will add, which is the
# sum over finished jobs whose row is applied without reading applied rows (they may be
# pruned); the vault one against the vault (the same definition the recompute writes).
EXPECTED_STATS = _expected_stats()

# Invariant 2: balance equals the ledger's sum.
EXPECTED_BALANCES = """
    SELECT c.user_id, coalesce(sum(l.amount), 0) AS exp_balance, c.balance AS balance
    FROM user_credits c LEFT JOIN credit_ledger l USING (user_id)
    GROUP BY c.user_id, c.balance
    HAVING coalesce(sum(l.amount), 0) <> c.balance
"""

# Invariants 2 and 3 per job: net charge, vault rows, and counts of a finished job (its
# items created, failed or never attempted; only a cancelled job has the last).
EXPECTED_JOBS = f"""
    WITH charges AS (
        SELECT job_id, sum(amount) AS net FROM credit_ledger
        WHERE job_id IS NOT NULL GROUP BY job_id
    ), vault AS (
        SELECT job_id, count(*) AS n FROM user_accounts GROUP BY job_id
    )
    SELECT j.id, j.status, j.requested, j.successful, j.failures, j.cancelled, j.price,
           j.cancel_requested_at IS NOT NULL AS cancel_requested,
           coalesce(c.net, 0) AS net, coalesce(v.n, 0) AS vault_rows
    FROM jobs j LEFT JOIN charges c ON c.job_id = j.id LEFT JOIN vault v ON v.job_id = j.id
    WHERE coalesce(v.n, 0) <> j.successful
       OR coalesce(c.net, 0) <> -(CASE WHEN j.status IN {TERMINAL_SQL}
                                       THEN j.successful ELSE j.requested END) * j.price
       OR (j.status IN {TERMINAL_SQL}
           AND j.successful + j.failures + j.cancelled <> j.requested)
       OR (j.cancel_requested_at IS NULL AND j.cancelled <> 0)
"""


def check_invariants(sessions: SessionFactory) -> list[Drift]:
    """Return every difference between the counters and their source tables."""
    with sessions() as session, session.begin():
        begin_snapshot(session)
        return find_drift(session)


def find_drift(session: Session) -> list[Drift]:
    """Every difference, inside the caller's snapshot (reconcile/snapshot.py)."""
    return stats_drift(session) + balance_drift(session) + job_drift(session)


def count_users(session: Session) -> int:
    """How many users a check covers (every user's stats and balance are compared)."""
    return int(session.execute(text("SELECT count(*) FROM users")).scalar_one())


def count_orphans(session: Session) -> int:
    """Accounts providers may hold that no vault does: unanswered calls, over every job."""
    return int(session.execute(text("SELECT coalesce(sum(orphans), 0) FROM jobs")).scalar_one())


def stats_drift(session: Session) -> list[Drift]:
    """Differences between user_stats and the jobs, outbox and vault."""
    drifts = []
    for row in session.execute(text(EXPECTED_STATS)).mappings():
        for field in STAT_NAMES:
            expected, actual = int(row[f"exp_{field}"]), int(row[field])
            if expected != actual:
                drifts.append(Drift("user", str(row["user_id"]), field, expected, actual))
    return drifts


def balance_drift(session: Session) -> list[Drift]:
    """Users whose balance differs from their ledger's sum."""
    return [
        Drift("user", str(r.user_id), "balance", int(r.exp_balance), int(r.balance))
        for r in session.execute(text(EXPECTED_BALANCES))
    ]


def job_drift(session: Session) -> list[Drift]:
    """Jobs whose vault rows, net charge or counts disagree with their figures."""
    drifts = []
    for r in session.execute(text(EXPECTED_JOBS)):
        job = str(r.id)
        if r.vault_rows != r.successful:
            drifts.append(Drift("job", job, "vault_rows", r.successful, int(r.vault_rows)))
        finished = JobStatus(r.status).terminal
        charged = r.successful if finished else r.requested
        if r.net != -charged * r.price:
            drifts.append(Drift("job", job, "net_charge", -charged * r.price, int(r.net)))
        outcomes = r.successful + r.failures + r.cancelled
        if finished and outcomes != r.requested:
            drifts.append(Drift("job", job, "outcomes", r.requested, outcomes))
        if r.cancelled and not r.cancel_requested:
            drifts.append(Drift("job", job, "cancelled", 0, int(r.cancelled)))
    return drifts
