"""Row 6: one job of growing size: pipeline time should grow linearly, worker memory stay flat."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from bench import seed
from bench.context import Bench
from bench.processes import PeakRss, tree_rss, worker
from bench.report import Row, Target

MB = 1024 * 1024
PROCESSES, THREADS = 2, 8


@dataclass(frozen=True)
class Step:
    """One job size: its submit→completed time and the worker tree's memory."""

    items: int
    seconds: float
    idle_rss: int
    peak_rss: int
    completed: bool
    cold_seconds: float


def run(bench: Bench) -> list[Row]:
    """Each size on a freshly started worker (2 processes x 8 threads, as the Procfile)."""
    sizes = [100, 1_000, 10_000] if bench.quick else [100, 1_000, 10_000, 100_000]
    steps = [_step(bench, items) for items in sizes]
    # Below this size a job has fewer slices than the worker has threads: its time is one
    # slice's latency, not items over throughput, so linear growth is not expected yet.
    saturated = bench.settings().slice_size * PROCESSES * THREADS
    rows: list[Row] = []
    for previous, step in zip([None, *steps], steps, strict=False):
        rows.append(_time_row(previous, step, saturated))
    for previous, step in itertools.pairwise(steps):
        rows.append(
            Row(
                f"growth: worker peak RSS n={step.items:,}",
                step.peak_rss / MB,
                "MB",
                previous.peak_rss / MB,
                f"peak at n={previous.items:,}",
                Target("ratio", "<=", 1.2),
                f"idle after boot {step.idle_rss / MB:.0f} MB",
                {"steps": [s.__dict__ for s in steps]} if step is steps[-1] else {},
            )
        )
    return rows


def _time_row(previous: Step | None, step: Step, saturated: int) -> Row:
    note = "" if step.completed else "job did not complete"
    name = f"growth: one job n={step.items:,}"
    if previous is None:
        return Row(
            name, step.seconds, "s", note=note or f"a cold 1-item job: {step.cold_seconds:.2f}s"
        )
    scale = step.items / previous.items
    linear = previous.items >= saturated
    if not linear:
        note = (
            note or f"n={previous.items:,} does not fill the worker's {PROCESSES * THREADS} threads"
        )
    return Row(
        name,
        step.seconds,
        "s",
        previous.seconds * scale,
        f"{scale:g}x time at n={previous.items:,}",
        Target("ratio", "<=", 1.2) if linear else None,
        note,
    )


def _step(bench: Bench, items: int) -> Step:
    settings = bench.settings()
    bench.reset()
    owner = seed.create_users(bench, 1, credits=items + 1)[0]
    env = bench.env()
    with worker(env, bench.run_dir, PROCESSES, THREADS, name=f"worker-growth-{items}") as service:
        idle = tree_rss(service.pid)
        warmup = seed.warm_up(bench, settings, owner)
        with PeakRss(service.pid) as peak:
            ids = seed.submit_jobs(bench, settings, [owner], [items])
            done = seed.wait_finished(bench, ids, timeout=600, interval=0.02)
    bench.reset()
    return Step(items, done.seconds, idle, peak.peak, done.completed == 1, warmup.seconds)
