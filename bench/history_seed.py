"""A year of history in SQL: finished jobs, their slices, outbox rows, ledger and vault.

Every figure agrees with every other (the report over it finds no drift): each job has
one done slice, one applied `job.completed` row, one `hold` ledger entry of what it
created (price 1) and a vault row per account created; user_stats and balances are the
sums. Jobs finished one per day-step over the past year, so about a twelfth of the
history is younger than the default 30 days of retention.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, text

from bench import seed
from bench.context import Bench
from core.users import NewUser, create_user

REFERENCE_ACCOUNTS = 10_000  # the ordinary user the heaviest one is compared with
REFERENCE_JOBS = 200
CREDITS = 10**12
OLD_REPORTS = 150  # past the default 100 kept

JOBS = text(
    "INSERT INTO jobs (user_id, status, provider, requested, successful, failures, price, "
    "slices_total, slices_done, created_at, started_at, finished_at, updated_at) "
    "SELECT (CAST(:owners AS uuid[]))[1 + n % cardinality(CAST(:owners AS uuid[]))], "
    "'completed', 'sandbox', :made + 1, :made, 1, 1, 1, 1, at - interval '1 minute', "
    "at - interval '1 minute', at, at "
    "FROM generate_series(1, :jobs) AS n, "
    "LATERAL (SELECT now() - (n % 365) * interval '1 day' - (n % 997) * interval '1 s') AS t(at)"
)
SLICES = text(
    "INSERT INTO job_slices (job_id, slice_index, user_id, start_index, stop_index, status, "
    "attempts, enqueued_at, successful, failures, finished_at) "
    "SELECT id, 0, user_id, 0, requested, 'done', 1, created_at, successful, failures, "
    "finished_at FROM jobs"
)
OUTBOX = text(
    "INSERT INTO outbox (topic, key, user_id, payload, created_at, applied_at) "
    "SELECT 'job.completed', id::text, user_id, jsonb_build_object('job_id', id::text, "
    "'requested', requested, 'successful', successful, 'failures', failures, 'cancelled', 0), "
    "finished_at, finished_at + interval '300 ms' FROM jobs"
)
LEDGER = text(
    "INSERT INTO credit_ledger (user_id, job_id, kind, amount, note, created_at) "
    "SELECT user_id, id, 'hold', -successful, 'history', created_at FROM jobs"
)
BALANCES = text(
    "UPDATE user_credits c SET balance = c.balance + h.amount, "
    "ledger_total = c.ledger_total + h.entries, jobs_total = c.jobs_total + h.entries FROM ("
    "  SELECT user_id, sum(amount) AS amount, count(*) AS entries FROM credit_ledger "
    "  WHERE kind = 'hold' GROUP BY user_id) h WHERE c.user_id = h.user_id"
)
VAULT = text(
    "INSERT INTO user_accounts (user_id, job_id, item_index, provider, external_id, username, "
    "secret_encrypted, created_at) "
    "SELECT j.user_id, j.id, i, 'sandbox', 'x' || i, 'u' || i, '\\x00', j.finished_at "
    "FROM jobs j CROSS JOIN generate_series(0, j.successful - 1) AS i"
)
STATS = text(
    "INSERT INTO user_stats (user_id, requested, successful, failures, business_centers) "
    "SELECT user_id, sum(requested), sum(successful), sum(failures), sum(successful) "
    "FROM jobs GROUP BY user_id"
)
REPORTS = text(
    "INSERT INTO reconcile_reports (started_at, duration_seconds, origin, users_checked, "
    "outbox_backlog, oldest_pending_seconds, drift_count, repair, repaired_count) "
    "SELECT now() - n * interval '1 hour', 1.0, 'daemon', 0, 0, 0, 0, false, 0 "
    "FROM generate_series(:count, 1, -1) AS n"
)


@dataclass(frozen=True)
class History:
    """Who owns the seeded history, and how much was written."""

    heaviest: NewUser
    reference: NewUser
    users: int
    jobs: int
    vault_rows: int
    seconds: float


def seed_history(bench: Bench, jobs: int, vault: int, users: int) -> History:
    """Write `jobs` finished jobs and about `vault` vault rows; half the vault is one user's."""
    started = time.perf_counter()
    heaviest = create_user(bench.database.sessions, "heaviest", credits=CREDITS)
    reference = create_user(bench.database.sessions, "reference", credits=CREDITS)
    others = seed.create_users(bench, users, credits=CREDITS)
    heavy_jobs = jobs // 10
    other_jobs = jobs - heavy_jobs - REFERENCE_JOBS
    other_made = max(1, (vault - vault // 2 - REFERENCE_ACCOUNTS) // other_jobs)
    shares = [
        ([heaviest.user_id], heavy_jobs, (vault // 2) // heavy_jobs),
        ([reference.user_id], REFERENCE_JOBS, REFERENCE_ACCOUNTS // REFERENCE_JOBS),
        (others, other_jobs, other_made),
    ]
    with bench.database.engine.begin() as connection:
        connection.execute(text("SET LOCAL statement_timeout = 0"))  # ten million rows at once
        _skip_foreign_key_checks(connection)
        for owners, count, made in shares:
            connection.execute(
                JOBS, {"owners": [str(o) for o in owners], "jobs": count, "made": made}
            )
        for statement in (SLICES, OUTBOX, LEDGER, BALANCES, VAULT, STATS):
            connection.execute(statement)
        connection.execute(REPORTS, {"count": OLD_REPORTS})
    analyze(bench)
    written = heavy_jobs * shares[0][2] + REFERENCE_ACCOUNTS + other_jobs * other_made
    return History(heaviest, reference, users + 2, jobs, written, time.perf_counter() - started)


def analyze(bench: Bench) -> None:
    """VACUUM ANALYZE, as autovacuum would have by the time a year had passed."""
    with bench.database.engine.connect() as connection:
        autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
        autocommit.execute(text("SET statement_timeout = 0"))
        autocommit.execute(text("VACUUM ANALYZE"))
        autocommit.execute(text("RESET statement_timeout"))


def _skip_foreign_key_checks(connection: Connection) -> None:
    # The generated rows point at existing users and jobs by construction.
    superuser = text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    if connection.execute(superuser).scalar():
        connection.execute(text("SET LOCAL session_replication_role = replica"))
