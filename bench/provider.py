"""Rows 9-10: the http provider over real HTTP against the reference provisioning API.

(a) The reference server limited to 200 requests/s (20 ms a call) and
TALLY_PROVIDER_RATE_LIMIT=200 on two worker processes: the achieved rate beside the limit,
and the share of answers that were 429. (b) The reference server unlimited with 50 ms a
call: accounts/s beside Little's law for the calls in flight (in flight / latency).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import httpx

from bench import seed
from bench.context import Bench
from bench.processes import services, worker
from bench.report import Row, Target
from devstack.processes import free_port
from harness.waiting import wait_for

RATE_LIMIT = 200.0
LIMITED_LATENCY_MS = 20.0
OPEN_LATENCY_MS = 50.0
OPEN_CONCURRENCY = 8
PROCESSES, THREADS = 2, 4
# Slices small enough that Dramatiq's prefetch spreads them evenly over the two processes.
SLICE_SIZE = 100


@contextlib.contextmanager
def reference_server(bench: Bench, *options: str) -> Iterator[str]:
    """`python -m devstack.reference_provider` on a free port; yield its accounts URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "devstack.reference_provider", "--port", str(port)]
    with services(bench.env(), bench.run_dir) as stack:
        child = stack.start("reference-provider", [*command, *options])
        wait_for(lambda: _answers(base) or not child.running, timeout=30)
        yield base


def run(bench: Bench) -> list[Row]:
    """Both rows: the shared rate limit, and throughput with no limit."""
    return [limited(bench), unlimited(bench)]


def limited(bench: Bench) -> Row:
    """Achieved rate ÷ the provider's limit, with the share of throttled answers."""
    items = int(bench.size(6_000, 1_500))
    options = ("--rate-limit", str(RATE_LIMIT), "--latency-ms", str(LIMITED_LATENCY_MS))
    with reference_server(bench, *options) as base:
        done, counts = _run_jobs(
            bench, base, items, PROCESSES, TALLY_PROVIDER_RATE_LIMIT=str(RATE_LIMIT)
        )
    answers = counts["answers"]
    throttled = answers.get("429", 0) / max(1, counts["requests"])
    peak = counts["max_requests_in_one_second"]
    details = {**_details(done, counts), "throttled_share": throttled, "peak_per_second": peak}
    note = f"429s {throttled:.2%} of {counts['requests']} requests (target ≤ 1 %); peak {peak}/s"
    return Row(
        "http provider, rate-limited (20 ms)",
        done.successful / done.seconds if done.seconds else 0.0,
        "accounts/s",
        RATE_LIMIT,
        f"provider limit {RATE_LIMIT:.0f}/s",
        Target("ratio", ">=", 0.95),
        note,
        details,
    )


def unlimited(bench: Bench) -> Row:
    """Accounts/s ÷ (calls in flight ÷ latency) over real HTTP."""
    items = int(bench.size(20_000, 5_000))
    in_flight = PROCESSES * OPEN_CONCURRENCY
    ideal = in_flight / (OPEN_LATENCY_MS / 1000)
    with reference_server(bench, "--latency-ms", str(OPEN_LATENCY_MS)) as base:
        done, counts = _run_jobs(
            bench, base, items, PROCESSES, TALLY_PROVIDER_CONCURRENCY=str(OPEN_CONCURRENCY)
        )
    return Row(
        "http provider, unlimited (50 ms)",
        done.successful / done.seconds if done.seconds else 0.0,
        "accounts/s",
        ideal,
        f"ideal {in_flight}/50ms",
        Target("ratio", ">=", 0.9),
        f"{in_flight} calls in flight at most, over HTTP",
        _details(done, counts),
    )


def _run_jobs(
    bench: Bench, base: str, items: int, processes: int, **env: str
) -> tuple[seed.JobsOutcome, dict[str, Any]]:
    url = base + "/accounts"
    provider_env = {
        "TALLY_PROVIDER": "http",
        "TALLY_PROVIDER_URL": url,
        "TALLY_SLICE_SIZE": str(SLICE_SIZE),
        **env,
    }
    settings = bench.settings(provider="http", provider_url=url, slice_size=SLICE_SIZE)
    bench.reset()
    owner = seed.create_users(bench, 1, credits=items + 10)[0]
    with worker(bench.env(**provider_env), bench.run_dir, processes, THREADS, name="worker-http"):
        seed.warm_up(bench, settings, owner, provider="http")
        httpx.post(base + "/_reset", timeout=10)
        ids = seed.submit_jobs(bench, settings, [owner] * 4, _split(items, 4), provider="http")
        done = seed.wait_finished(bench, ids, timeout=600)
    counts: dict[str, Any] = httpx.get(base + "/_counts", timeout=30).json()
    bench.reset()
    return done, counts


def _split(items: int, jobs: int) -> list[int]:
    return [items // jobs + (1 if n < items % jobs else 0) for n in range(jobs)]


def _details(done: seed.JobsOutcome, counts: dict[str, Any]) -> dict[str, Any]:
    return {
        "items": done.requested,
        "successful": done.successful,
        "failures": done.failures,
        "seconds": done.seconds,
        "requests": counts["requests"],
        "answers": counts["answers"],
        "provider_accounts": counts["accounts"],
        "provider_mean_in_flight": counts["mean_in_flight"],
        "provider_peak_in_flight": counts["peak_in_flight"],
        "processes": PROCESSES,
        "threads": THREADS,
        "slice_size": SLICE_SIZE,
    }


def _answers(base: str) -> bool:
    try:
        return httpx.get(base + "/_counts", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
