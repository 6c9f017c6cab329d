"""Row 7: a small job's latency behind a big one, with fair turns and with one queue (FIFO)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from sqlalchemy import text

from bench import seed
from bench.context import Bench
from bench.processes import worker
from bench.report import Row, Target, percentile

PROCESSES, THREADS = 2, 8  # the Procfile's worker
LATENCY_MS = 50.0
SMALL_ITEMS = 10
LIMIT_SECONDS = 2.0
SUBMIT_SPACING_SECONDS = 0.25
# The small jobs start once this many of the big job's slices are done: it is in full flow.
BIG_JOB_FLOWING = 2 * PROCESSES * THREADS


@dataclass(frozen=True)
class Run:
    """One mode's measure: each small job's submit→completed time, and the big job's."""

    fair: bool
    small_seconds: list[float]
    big_items_per_second: float
    big_pending_slices: list[int]  # the big job's slices not yet done at each small submit
    completed: bool

    @property
    def name(self) -> str:
        """How the mode is called in the table."""
        return "fair turns" if self.fair else "one queue (FIFO)"


def run(bench: Bench) -> list[Row]:
    """Big job of user A running; user B's small jobs submitted one by one behind it."""
    big, smalls = bench.size(100_000, 30_000), bench.size(20, 5)
    fair = _measure(bench, True, big, smalls)
    fifo = _measure(bench, False, big, smalls)
    bench.reset()
    label = f"small job ({SMALL_ITEMS} items) behind a {big:,}-item job"
    rows: list[Row] = []
    for share, word in ((0.5, "p50"), (0.99, "p99")):
        mine, theirs = percentile(fair.small_seconds, share), percentile(fifo.small_seconds, share)
        note = _note(fair)
        rows.append(
            Row(
                f"fair turns: {label}, {word}",
                mine,
                "s",
                theirs,
                f"{fifo.name}, same run",
                Target("figure", "<=", LIMIT_SECONDS, "s"),
                note,
                {"fair": fair.__dict__, "fifo": fifo.__dict__} if share == 0.5 else {},
            )
        )
        rows.append(
            Row(
                f"{fifo.name}: {label}, {word}",
                theirs,
                "s",
                target=Target("figure", "<=", LIMIT_SECONDS, "s"),
                note=_note(fifo),
            )
        )
    rows.append(
        Row(
            "fair turns: the big job's throughput",
            fair.big_items_per_second,
            "accounts/s",
            fifo.big_items_per_second,
            f"{fifo.name}, same run",
            Target("ratio", ">=", 0.9),
        )
    )
    return rows


def _measure(bench: Bench, fair: bool, big: int, smalls: int) -> Run:
    """Start the worker in one mode, run the big job, submit the small ones behind it."""
    bench.reset()
    owner_a, owner_b = seed.create_users(bench, 2, credits=big + smalls * SMALL_ITEMS + 10)
    settings = bench.settings()
    env = bench.env(TALLY_SANDBOX_LATENCY_MS=str(LATENCY_MS), TALLY_FAIR_TURNS=str(fair).lower())
    name = "worker-fair" if fair else "worker-fifo"
    with worker(env, bench.run_dir, PROCESSES, THREADS, name=name):
        seed.warm_up(bench, settings, owner_b, jobs=PROCESSES)
        big_id = seed.submit_jobs(bench, settings, [owner_a], [big])[0]
        _wait_slices_done(bench, big_id, BIG_JOB_FLOWING)
        small_ids, pending = [], []
        for _ in range(smalls):
            pending.append(_slices_pending(bench, big_id))
            small_ids += seed.submit_jobs(bench, settings, [owner_b], [SMALL_ITEMS])
            time.sleep(SUBMIT_SPACING_SECONDS)
        done = seed.wait_finished(bench, [big_id, *small_ids], timeout=600)
        big_done = seed.outcome(bench, [big_id])
    return Run(
        fair=fair,
        small_seconds=seed.job_seconds(bench, small_ids),
        big_items_per_second=big_done.items_per_second,
        big_pending_slices=pending,
        completed=done.completed == smalls + 1,
    )


def _note(measured: Run) -> str:
    if not measured.completed:
        return "not every job completed"
    least = min(measured.big_pending_slices)
    return f"{len(measured.small_seconds)} small jobs; the big job had ≥ {least} slices waiting"


def _wait_slices_done(bench: Bench, job_id: uuid.UUID, count: int) -> None:
    deadline = time.monotonic() + 120
    while _slices_done(bench, job_id) < count and time.monotonic() < deadline:
        time.sleep(0.02)


def _slices_done(bench: Bench, job_id: uuid.UUID) -> int:
    return _count(bench, "SELECT slices_done FROM jobs WHERE id = :id", job_id)


def _slices_pending(bench: Bench, job_id: uuid.UUID) -> int:
    query = "SELECT count(*) FROM job_slices WHERE job_id = :id AND status = 'pending'"
    return _count(bench, query, job_id)


def _count(bench: Bench, query: str, job_id: uuid.UUID) -> int:
    with bench.database.engine.connect() as connection:
        return int(connection.execute(text(query), {"id": job_id}).scalar_one())
