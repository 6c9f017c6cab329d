"""Row 5: business_centers recompute over a large vault, vs a bare GROUP BY of the same rows."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from sqlalchemy import text

from bench import seed
from bench.context import Bench
from bench.report import Row, Target
from reconcile.recompute import recompute_business_centers

VAULT = text(
    "INSERT INTO user_accounts (user_id, job_id, item_index, provider, external_id, username, "
    "secret_encrypted, metadata) "
    "SELECT j.user_id, j.id, i, 'sandbox', 'sbx_' || substr(md5(j.id::text || i), 1, 16), "
    "'user_' || substr(md5(i || j.id::text), 1, 12), "
    "decode(repeat(md5(i::text), 5), 'hex'), '{\"provider\": \"sandbox\"}' "
    "FROM jobs j CROSS JOIN generate_series(0, j.requested - 1) AS i"
)
BARE = text("SELECT user_id, count(*) FROM user_accounts WHERE deleted_at IS NULL GROUP BY user_id")
REPEATS = 3


def run(bench: Bench) -> list[Row]:
    """Seconds of a recompute that changes nothing, vs the bare per-user count, medians."""
    rows, users = bench.size(1_000_000, 100_000), bench.size(10_000, 1_000)
    bench.reset()
    seeded = _seed(bench, users, rows // users)
    first = _timed(lambda: recompute_business_centers(bench.database.sessions))
    recompute_times, bare_times = [], []
    for _ in range(REPEATS):
        bare_times.append(_timed(lambda: _bare(bench)))
        recompute_times.append(_timed(lambda: recompute_business_centers(bench.database.sessions)))
    bench.reset()
    recompute, bare = statistics.median(recompute_times), statistics.median(bare_times)
    details = {
        "vault_rows": rows,
        "users": users,
        "seed_seconds": seeded,
        "first_run_seconds": first,
        "recompute_seconds": recompute_times,
        "bare_seconds": bare_times,
    }
    return [
        Row(
            f"recompute business_centers ({rows:,} rows)",
            recompute,
            "s",
            bare,
            "bare GROUP BY",
            Target("ratio", "<=", 2.0),
            f"median of {REPEATS}; first run (creates {users:,} rows) {first:.2f}s",
            details,
        ),
    ]


def _seed(bench: Bench, users: int, per_user: int) -> float:
    started = time.perf_counter()
    owners = seed.create_users(bench, users, credits=0)
    seed.bare_jobs(bench, owners, [per_user] * users)
    with bench.database.engine.begin() as connection:
        if connection.execute(
            text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        ).scalar():
            # The generated rows point at existing users and jobs by construction; skipping
            # the per-row foreign-key checks halves the time it takes to write them.
            connection.execute(text("SET LOCAL session_replication_role = replica"))
        connection.execute(VAULT)
    with bench.database.engine.connect() as connection:
        autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
        autocommit.execute(text("VACUUM ANALYZE user_accounts"))
        autocommit.execute(text("VACUUM ANALYZE jobs"))
    return time.perf_counter() - started


def _bare(bench: Bench) -> int:
    with bench.database.sessions() as session, session.begin():
        return len(session.execute(BARE).all())


def _timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started
