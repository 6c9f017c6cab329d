"""Row 8: a crowd of small queued jobs against one big job, and a newcomer behind them.

For each N queued jobs of 40 accounts, the same number of accounts runs three ways on a
worker started after everything is queued: as one job (the reference), as N jobs of one
user, and as N jobs of N/5 users. Throughput is timed by the database clock, from the
first slice claimed to the last job finished; per slice, the run counts the statements the
worker sent, the transactions PostgreSQL committed, the rows it read and the CPU of the
worker and of its PostgreSQL backends. While a crowd drains, newcomers (each a new user)
submit one 10-account job every 0.25 s; their submit → finished times give p50 and p99.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass

from bench import profiling, seed
from bench.context import Bench
from bench.processes import pids_cpu, tree_cpu, worker
from bench.report import Row, Target, percentile
from bench.server_stats import StatementCounter, server_counts

PROCESSES, THREADS = 2, 8  # the Procfile's worker
JOB_ITEMS = 40
JOBS_PER_USER = 5
NEWCOMERS = 20
NEWCOMER_ITEMS = 10
NEWCOMER_SPACING_SECONDS = 0.25
NEWCOMER_LIMIT_SECONDS = 2.0
DRAIN_TIMEOUT_SECONDS = 900.0
SIZES = (100, 1_000, 2_000, 10_000)  # queued jobs (2,000: 400 users of 5 jobs each)
QUICK_SIZES = (100, 1_000)


@dataclass(frozen=True)
class Drain:
    """One queue drained by a fresh worker: what it took, per slice and in all."""

    shape: str
    jobs: int
    slices: int
    accounts_per_second: float
    completed: bool
    statements_per_slice: float
    transactions_per_slice: float
    rows_read_per_slice: float
    worker_cpu_ms_per_slice: float
    postgres_cpu_ms_per_slice: float
    newcomer_seconds: list[float]


def run(bench: Bench) -> list[Row]:
    """Drain each size three ways and compare."""
    rows: list[Row] = []
    smallest: dict[bool, Drain] = {}  # per shape (one user or many), the smallest size
    for queued in QUICK_SIZES if bench.quick else SIZES:
        single = _drain(bench, "one job", [(1, queued * JOB_ITEMS)], newcomers=False)
        for users in (1, queued // JOBS_PER_USER):
            drained = _drain(bench, _shape(users), _crowd(users, queued), newcomers=True)
            smallest.setdefault(users == 1, drained)
            rows += _rows(queued, drained, single, smallest[users == 1])
    bench.reset()
    return rows


def _shape(users: int) -> str:
    return "1 user" if users == 1 else f"{users:,} users"


def _crowd(users: int, jobs: int) -> list[tuple[int, int]]:
    """(owner number, job size) for `jobs` jobs of JOB_ITEMS spread evenly over `users`."""
    return [(n % users + 1, JOB_ITEMS) for n in range(jobs)]


def _drain(bench: Bench, shape: str, jobs: list[tuple[int, int]], *, newcomers: bool) -> Drain:
    """Queue the jobs, start a worker, let it drain them (newcomers arriving), and measure."""
    bench.reset()
    owners = max(owner for owner, _ in jobs)
    per_owner = max(sum(n for o, n in jobs if o == owner) for owner in range(1, owners + 1))
    users = seed.create_users(bench, owners, credits=per_owner)
    settings = bench.settings(max_job_count=max(n for _, n in jobs))
    ids = seed.submit_jobs(bench, settings, [users[o - 1] for o, _ in jobs], [n for _, n in jobs])
    counter = StatementCounter(bench.run_dir / f"statements-{uuid.uuid4().hex[:8]}")
    before = server_counts(bench)
    env = bench.env(**counter.env(), TALLY_MAX_JOB_COUNT=str(settings.max_job_count))
    with (
        worker(env, bench.run_dir, PROCESSES, THREADS, name="worker-crowd") as service,
        profiling.profiled(bench, service.pid, f"crowd-{shape}-{len(ids)}".replace(" ", "-")),
    ):
        cpu_before = tree_cpu(service.pid)
        arrived = _newcomers(bench, ids) if newcomers else []
        done = seed.wait_finished_quietly(bench, ids + arrived, DRAIN_TIMEOUT_SECONDS, 0.25)
        worker_cpu = tree_cpu(service.pid) - cpu_before
        backends_cpu = pids_cpu(seed.backend_pids(bench, "tally-worker"))
    after = server_counts(bench)
    slices = seed.slices_of(bench, ids + arrived)
    spent = after - before
    return Drain(
        shape=shape,
        jobs=len(ids),
        slices=slices,
        accounts_per_second=seed.drain_rate(bench, ids),
        completed=done.completed == len(ids) + len(arrived),
        statements_per_slice=counter.total() / slices,
        transactions_per_slice=spent.transactions / slices,
        rows_read_per_slice=spent.rows_read / slices,
        worker_cpu_ms_per_slice=1e3 * worker_cpu / slices,
        postgres_cpu_ms_per_slice=1e3 * backends_cpu / slices,
        newcomer_seconds=seed.job_seconds(bench, arrived),
    )


def _newcomers(bench: Bench, crowd: list[uuid.UUID]) -> list[uuid.UUID]:
    """Submit one newcomer's job every spacing while the crowd still has unfinished jobs."""
    arrived: list[uuid.UUID] = []
    for _ in range(NEWCOMERS):
        if seed.finished_so_far(bench) >= len(crowd):  # (newcomers finish too; no table read)
            break
        (newcomer,) = seed.create_users(bench, 1, credits=NEWCOMER_ITEMS)
        arrived += seed.submit_jobs(bench, bench.settings(), [newcomer], [NEWCOMER_ITEMS])
        time.sleep(NEWCOMER_SPACING_SECONDS)
    return arrived


def _rows(queued: int, drained: Drain, single: Drain, smallest: Drain) -> list[Row]:
    label = f"crowd of {queued:,} queued jobs, {drained.shape}"
    note = "" if drained.completed else "not every job completed"
    rows = [
        Row(
            f"{label}: accounts/s",
            drained.accounts_per_second,
            "accounts/s",
            single.accounts_per_second,
            f"one job of {queued * JOB_ITEMS:,}, same run",
            Target("ratio", ">=", 0.7),
            note,
            {"crowd": asdict(drained), "single": asdict(single)},
        )
    ]
    for name, unit, field in (
        ("statements per slice", "", "statements_per_slice"),
        ("rows read per slice", "", "rows_read_per_slice"),
        ("worker CPU per slice", "ms", "worker_cpu_ms_per_slice"),
        ("PostgreSQL CPU per slice", "ms", "postgres_cpu_ms_per_slice"),
    ):
        reference = None if smallest is drained else getattr(smallest, field)
        rows.append(
            Row(
                f"{label}: {name}",
                getattr(drained, field),
                unit,
                reference,
                f"at {smallest.jobs:,} queued jobs" if reference is not None else "",
                Target("ratio", "<=", 1.5) if reference is not None else None,
            )
        )
    arrivals = drained.newcomer_seconds
    for share, word in ((0.5, "p50"), (0.99, "p99")):
        rows.append(
            Row(
                f"{label}: a newcomer's {NEWCOMER_ITEMS}-account job, {word}",
                percentile(arrivals, share),
                "s",
                target=Target("figure", "<=", NEWCOMER_LIMIT_SECONDS, "s"),
                note=f"{len(arrivals)} newcomers arrived while the crowd drained",
            )
        )
    return rows
