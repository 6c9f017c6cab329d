"""Row 2: an I/O-bound provider (50 ms a call) vs Little's law for the configured concurrency."""

from __future__ import annotations

from bench import seed
from bench.context import Bench
from bench.processes import worker
from bench.report import Row, Target

LATENCY_MS = 50.0
CONCURRENCY = 256
# One worker process; its threads run several slices whose calls share the bound.
PROCESSES, THREADS = 1, 4


def run(bench: Bench) -> list[Row]:
    """Accounts/s with provider calls of 50 ms, vs in-flight bound / latency."""
    items = bench.size(20_000, 5_000)
    env = bench.env(
        TALLY_SANDBOX_LATENCY_MS=str(LATENCY_MS), TALLY_PROVIDER_CONCURRENCY=str(CONCURRENCY)
    )
    settings = bench.settings()
    in_flight = PROCESSES * CONCURRENCY  # TALLY_PROVIDER_CONCURRENCY is per worker process
    ideal = in_flight / (LATENCY_MS / 1000)
    bench.reset()
    owner = seed.create_users(bench, 1, credits=items + 1)[0]
    with worker(env, bench.run_dir, PROCESSES, THREADS, name="worker-io"):
        seed.warm_up(bench, settings, owner)
        ids = seed.submit_jobs(bench, settings, [owner], [items])
        done = seed.wait_finished(bench, ids, timeout=300)
    bench.reset()
    details = {
        "items": items,
        "latency_ms": LATENCY_MS,
        "concurrency_per_process": CONCURRENCY,
        "processes": PROCESSES,
        "threads": THREADS,
        "slice_size": settings.slice_size,
        "in_flight_bound": in_flight,
        "seconds": done.seconds,
    }
    note = f"{in_flight} calls in flight at most"
    return [
        Row(
            "I/O-bound provider (50 ms)",
            done.items_per_second,
            "accounts/s",
            ideal,
            f"ideal {in_flight}/50ms",
            Target("ratio", ">=", 0.8),
            note,
            details,
        ),
    ]
