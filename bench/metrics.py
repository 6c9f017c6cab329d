"""Row: Prometheus scrapes of /metrics over a large vault, against bare Starlette."""

from __future__ import annotations

import secrets

from sqlalchemy import text

from bench import seed
from bench.context import Bench
from bench.loadgen import Load, hammer
from bench.processes import uvicorn
from bench.report import Row
from core.users import create_user

CONNECTIONS = 16
SEED_VAULT = text(
    "INSERT INTO user_accounts (user_id, job_id, item_index, provider, external_id, "
    "username, secret_encrypted) SELECT :user_id, :job_id, g, 'sandbox', 'x' || g, "
    "'u' || g, '\\x00' FROM generate_series(1, :n) g"
)


def run(bench: Bench) -> list[Row]:
    """Scrapes/s of GET /metrics over many jobs and vault rows, 16 scrapers at once."""
    seconds = bench.size(10.0, 3.0)
    jobs, vault = bench.size(50_000, 10_000), bench.size(200_000, 50_000)
    token = secrets.token_urlsafe(24)
    env = bench.env(TALLY_METRICS_TOKEN=token)
    bench.reset()
    _seed(bench, jobs, vault)
    bare_runs = [_bare(bench, env, seconds)]
    with uvicorn("web.main:app", env, bench.run_dir, "/healthz", factory=True) as base:
        scraped = hammer(
            f"{base}/metrics", {"Authorization": f"Bearer {token}"}, seconds, CONNECTIONS
        )
    bare_runs.append(_bare(bench, env, seconds))
    bare = max(bare_runs, key=lambda load: load.requests_per_second)
    bench.reset()
    note = f"{scraped.tool}, {CONNECTIONS} scrapers, {jobs} jobs, {vault} vault rows"
    if scraped.bad:
        note += f"; {scraped.bad} answers not 2xx/3xx"
    details = {"bare": [b.__dict__ for b in bare_runs], "metrics": scraped.__dict__}
    return [
        Row(
            "GET /metrics (scrape token)",
            scraped.requests_per_second,
            "req/s",
            bare.requests_per_second,
            "bare Starlette",
            None,
            note,
            {**details, "jobs": jobs, "vault_rows": vault, "seconds": seconds},
        )
    ]


def _seed(bench: Bench, jobs: int, vault: int) -> None:
    """Finished jobs and one job's vault rows, set-based, then ANALYZE as autovacuum would."""
    user = create_user(bench.database.sessions, "scraped")
    job_id = seed.bare_jobs(bench, [user.user_id] * jobs, [4] * jobs)[0][1]
    with bench.database.engine.begin() as connection:
        connection.execute(SEED_VAULT, {"user_id": user.user_id, "job_id": job_id, "n": vault})
    with bench.database.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("ANALYZE jobs, user_accounts")
        )


def _bare(bench: Bench, env: dict[str, str], seconds: float) -> Load:
    with uvicorn("bench.bare_app:app", env, bench.run_dir, "/constant") as base:
        return hammer(f"{base}/constant", {}, seconds, CONNECTIONS)
