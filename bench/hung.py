"""A Redis that accepts connections and never answers: how long the web takes to answer.

The web process (`uvicorn --factory web.main:app`) is pointed at a server that accepts every
connection and never answers (harness/silent_server.py), then 45 job submits (quick: 20) and
4 `GET /healthz` go to it at once. Its answers must not wait on Redis: each submit is
committed and answered, and the turn message goes when Redis is back (the reconcile sweep
sends it). The figure is the slowest answer of each kind; the reference is the same load
on the run's healthy Redis, in the same run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from bench.context import Bench
from bench.processes import uvicorn
from bench.report import Row, Target
from core.users import create_user
from harness.silent_server import SilentServer

ITEMS = 20
PROBES = 4
LIMIT_MS = 1000.0


def run(bench: Bench) -> list[Row]:
    """The slowest submit and /healthz with Redis hung, beside the same with Redis healthy."""
    submits = bench.size(45, 20)
    bench.reset()
    healthy = _slowest(bench, bench.servers.redis_url, submits)
    with SilentServer() as hung:
        stuck = _slowest(bench, hung.redis_url, submits)
    bench.reset()
    rows = []
    for kind in ("POST /api/jobs", "GET /healthz"):
        rows.append(
            Row(
                f"slowest {kind} while Redis never answers",
                stuck[kind],
                "ms",
                healthy[kind],
                "the same with Redis healthy, same run",
                Target("figure", "<=", LIMIT_MS, "ms"),
                f"{submits} submits and {PROBES} probes at once",
            )
        )
    return rows


def _slowest(bench: Bench, redis_url: str, submits: int) -> dict[str, float]:
    """The slowest answer, in ms, of each kind of request sent at once to a web on redis_url."""
    user = create_user(bench.database.sessions, f"user-{redis_url}", credits=submits * ITEMS)
    env = bench.env(REDIS_URL=redis_url)
    limits = httpx.Limits(max_connections=submits + PROBES)
    with (
        uvicorn("web.main:app", env, bench.run_dir, "/healthz", factory=True) as base,
        httpx.Client(base_url=base, timeout=60, limits=limits) as client,
        ThreadPoolExecutor(submits + PROBES) as pool,
    ):
        auth = {"Authorization": f"Bearer {user.token}"}
        post = lambda: client.post("/api/jobs", json={"count": ITEMS}, headers=auth)  # noqa: E731
        probe = lambda: client.get("/healthz")  # noqa: E731
        posted = [pool.submit(_timed, post) for _ in range(submits)]
        probed = [pool.submit(_timed, probe) for _ in range(PROBES)]
        return {
            "POST /api/jobs": max(f.result() for f in posted),
            "GET /healthz": max(f.result() for f in probed),
        }


def _timed(call: Callable[[], httpx.Response]) -> float:
    started = time.perf_counter()
    call().raise_for_status()
    return (time.perf_counter() - started) * 1000
