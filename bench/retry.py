"""A retry of a job's failures, with a small vault and a large one.

Each parent is a finished job of 1,000 slots: 900 accounts in the vault and 100 failed
slots whose calls went unanswered (their keys in `ambiguous_items`). A retry reads the
parent's missing slots and ambiguous keys, then submits the child with its link and kept
keys in one transaction (core/retry.py). It is timed with the user's vault holding 10,000
other accounts, then 1,000,000 (quick: 100,000): what a retry reads is the parent's slots,
so its time should not follow the vault.
"""

from __future__ import annotations

import statistics
import time
import uuid

from sqlalchemy import text

from bench import seed
from bench.context import Bench
from bench.report import Row, Target
from core.retry import retry_failures
from core.settings import Settings

SLOTS, MADE = 1_000, 900
RETRIES = 15  # parents retried per vault size; the median is kept

FILL = text(
    "INSERT INTO user_accounts (user_id, job_id, item_index, provider, external_id, username, "
    "secret_encrypted, metadata) "
    "SELECT j.user_id, j.id, i, 'sandbox', 'sbx_' || substr(md5(j.id::text || i), 1, 16), "
    "'user_' || substr(md5(i || j.id::text), 1, 12), decode(md5(i::text), 'hex'), '{}' "
    "FROM jobs j CROSS JOIN generate_series(0, :made - 1) AS i "
    "WHERE j.id = ANY(CAST(:jobs AS uuid[]))"
)
AMBIGUOUS = text(
    "INSERT INTO ambiguous_items (job_id, item_index, provider_key) "
    "SELECT j, i, j || ':' || i FROM unnest(CAST(:jobs AS uuid[])) AS j "
    "CROSS JOIN generate_series(:made, :slots - 1) AS i"
)
FAILURES = text(
    "UPDATE jobs SET successful = :made, failures = :slots - :made "
    "WHERE id = ANY(CAST(:jobs AS uuid[]))"
)


def run(bench: Bench) -> list[Row]:
    """Median seconds of a retry with the small vault, and with the large one beside it."""
    small = _median_retry(bench, 10_000)
    large_vault = bench.size(1_000_000, 100_000)
    large = _median_retry(bench, large_vault)
    bench.reset()
    return [
        Row(
            f"retry of 100 failed slots (vault of {large_vault + RETRIES * MADE:,} rows)",
            large,
            "s",
            small,
            f"vault of {10_000 + RETRIES * MADE:,} rows",
            Target("ratio", "<=", 1.5),
            f"median of {RETRIES} parents of {SLOTS:,} slots each",
            {"small_seconds": small, "large_seconds": large, "large_vault": large_vault},
        )
    ]


def _median_retry(bench: Bench, other_accounts: int) -> float:
    bench.reset()
    [owner] = seed.create_users(bench, 1, credits=10**9)
    [(_, other, _)] = seed.bare_jobs(bench, [owner], [other_accounts])
    made = seed.bare_jobs(bench, [owner] * RETRIES, [SLOTS] * RETRIES)
    parents = [job for _, job, _ in made]
    with bench.database.engine.begin() as connection:
        connection.execute(FILL, {"jobs": [str(other)], "made": other_accounts})
        values = {"jobs": [str(p) for p in parents], "made": MADE, "slots": SLOTS}
        connection.execute(FILL, values)
        connection.execute(AMBIGUOUS, values)
        connection.execute(FAILURES, values)
    with bench.database.engine.connect() as connection:
        autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
        autocommit.execute(text("VACUUM ANALYZE user_accounts"))
        autocommit.execute(text("VACUUM ANALYZE ambiguous_items"))
    settings = bench.settings(max_job_count=SLOTS)
    return statistics.median(_timed_retry(bench, settings, owner, p) for p in parents)


def _timed_retry(bench: Bench, settings: Settings, owner: uuid.UUID, parent: uuid.UUID) -> float:
    started = time.perf_counter()
    retry_failures(bench.database.sessions, settings, owner, parent)
    return time.perf_counter() - started
