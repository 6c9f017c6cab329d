"""Row 9: the capacity model's measurements: throughput and costs with 1, 2 and 4 workers.

For each count of worker processes (8 threads each, sandbox without latency), a fresh
worker drains the same queued jobs. Throughput is timed by the database clock, from the
first slice claimed to the last job finished; the reference is the one-process figure
times the processes (linear scaling). Per account: the CPU of the worker's process tree
and of its PostgreSQL backends; per slice: statements the worker sent, transactions
PostgreSQL committed and commands Redis (the broker) served; and the bytes one vault row
takes on disk, indexes and TOAST included.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass

import redis
from sqlalchemy import text

from bench import seed
from bench.context import Bench
from bench.processes import pids_cpu, tree_cpu, worker
from bench.report import Row
from bench.server_stats import StatementCounter, server_counts

THREADS = 8
PROCESS_COUNTS = (1, 2, 4)
DRAIN_TIMEOUT_SECONDS = 900.0


@dataclass(frozen=True)
class Drain:
    """One queue drained by a worker of `processes` processes."""

    processes: int
    accounts: int
    slices: int
    accounts_per_second: float
    worker_cpu_us_per_account: float
    postgres_cpu_us_per_account: float
    statements_per_slice: float
    transactions_per_slice: float
    broker_commands_per_slice: float
    vault_bytes_per_row: float


def run(bench: Bench) -> list[Row]:
    """Drain the same jobs with 1, 2 and 4 worker processes; one row per figure."""
    jobs, per_job = bench.size(16, 8), bench.size(5_000, 1_000)
    drains = [_drain(bench, processes, jobs, per_job) for processes in PROCESS_COUNTS]
    bench.reset()
    one = drains[0]
    rows = [
        Row(
            f"capacity: {d.processes} worker process(es) x {THREADS} threads",
            d.accounts_per_second,
            "accounts/s",
            one.accounts_per_second * d.processes,
            "1 process x processes (linear)",
            None,
            f"{d.accounts:,} accounts, {d.slices} slices",
            asdict(d),
        )
        for d in drains
    ]
    for name, unit, field in (
        ("worker CPU per account", "µs", "worker_cpu_us_per_account"),
        ("PostgreSQL CPU per account", "µs", "postgres_cpu_us_per_account"),
        ("statements per slice", "", "statements_per_slice"),
        ("transactions per slice", "", "transactions_per_slice"),
        ("broker (Redis) commands per slice", "", "broker_commands_per_slice"),
        ("bytes per vault row", "B", "vault_bytes_per_row"),
    ):
        rows.append(
            Row(
                f"capacity: {name} (2 processes)",
                getattr(drains[1], field),
                unit,
                getattr(one, field),
                "with 1 process",
                None,
            )
        )
    return rows


def _drain(bench: Bench, processes: int, jobs: int, per_job: int) -> Drain:
    bench.reset()
    owners = seed.create_users(bench, jobs, credits=per_job)
    settings = bench.settings(max_job_count=per_job)
    ids = seed.submit_jobs(bench, settings, owners, [per_job] * jobs)
    counter = StatementCounter(bench.run_dir / f"statements-{uuid.uuid4().hex[:8]}")
    env = bench.env(**counter.env(), TALLY_MAX_JOB_COUNT=str(per_job))
    before, commands_before = server_counts(bench), _redis_commands(bench)
    with worker(env, bench.run_dir, processes, THREADS, name=f"worker-{processes}") as service:
        cpu_before = tree_cpu(service.pid)
        seed.wait_finished(bench, ids, DRAIN_TIMEOUT_SECONDS, interval=0.25)
        worker_cpu = tree_cpu(service.pid) - cpu_before
        backends_cpu = pids_cpu(seed.backend_pids(bench, "tally-worker"))
    spent, commands = server_counts(bench) - before, _redis_commands(bench) - commands_before
    slices, accounts = seed.slices_of(bench, ids), jobs * per_job
    return Drain(
        processes=processes,
        accounts=accounts,
        slices=slices,
        accounts_per_second=seed.drain_rate(bench, ids),
        worker_cpu_us_per_account=1e6 * worker_cpu / accounts,
        postgres_cpu_us_per_account=1e6 * backends_cpu / accounts,
        statements_per_slice=counter.total() / slices,
        transactions_per_slice=spent.transactions / slices,
        broker_commands_per_slice=commands / slices,
        vault_bytes_per_row=_vault_bytes_per_row(bench),
    )


def _redis_commands(bench: Bench) -> int:
    """Commands the run's private Redis has served so far (INFO stats)."""
    client = redis.Redis.from_url(bench.servers.redis_url)
    try:
        return int(client.info("stats")["total_commands_processed"])
    finally:
        client.close()


def _vault_bytes_per_row(bench: Bench) -> float:
    with bench.database.engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT pg_total_relation_size('user_accounts') AS size, "
                "(SELECT count(*) FROM user_accounts) AS n"
            )
        ).one()
    return float(row.size) / max(1, int(row.n))
