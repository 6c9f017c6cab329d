"""Row 4: authenticated status polling under load, against bare Starlette on the same uvicorn."""

from __future__ import annotations

import httpx

from bench import seed
from bench.context import Bench
from bench.loadgen import Load, hammer
from bench.processes import uvicorn
from bench.report import Row, Target
from core.users import create_user

CONNECTIONS = 32


def run(bench: Bench) -> list[Row]:
    """Requests/s and p99 of GET /api/job/<id>, plain and with If-None-Match."""
    seconds = bench.size(10.0, 3.0)
    env = bench.env()
    bench.reset()
    user = create_user(bench.database.sessions, "poller")
    job_id = seed.bare_jobs(bench, [user.user_id], [5000])[0][1]
    running_id = seed.bare_jobs(bench, [user.user_id], [5000], status="running")[0][1]
    auth = {"Authorization": f"Bearer {user.token}"}
    bare_runs = [_bare(bench, env, seconds)]
    with uvicorn("web.main:app", env, bench.run_dir, "/healthz", factory=True) as base:
        url = f"{base}/api/job/{job_id}"
        first = httpx.get(url, headers=auth)
        etag = first.headers["etag"]
        conditional = {**auth, "If-None-Match": etag}
        not_modified = httpx.get(url, headers=conditional).status_code == 304
        polled = hammer(url, auth, seconds, CONNECTIONS)
        live = hammer(f"{base}/api/job/{running_id}", auth, seconds, CONNECTIONS)
        revalidated = hammer(url, conditional, seconds, CONNECTIONS)
    bare_runs.append(_bare(bench, env, seconds))
    bare = max(bare_runs, key=lambda load: load.requests_per_second)
    bench.reset()
    details = {
        "bare": [b.__dict__ for b in bare_runs],
        "job": polled.__dict__,
        "running_job": live.__dict__,
        "if_none_match": revalidated.__dict__,
        "connections": CONNECTIONS,
        "seconds": seconds,
        "first_status": first.status_code,
    }
    note = f"{polled.tool}, {CONNECTIONS} connections"
    return [
        Row(
            "GET /api/job/<id> (auth, finished job)",
            polled.requests_per_second,
            "req/s",
            bare.requests_per_second,
            "bare Starlette",
            Target("ratio", ">=", 0.5),
            _note(note, polled),
            details,
        ),
        Row(
            "GET /api/job/<id> (auth, running job)",
            live.requests_per_second,
            "req/s",
            bare.requests_per_second,
            "bare Starlette",
            None,
            _note("read once per announced change; this job does not change", live),
        ),
        Row(
            "GET /api/job/<id> p99",
            polled.p99_ms,
            "ms",
            bare.p99_ms,
            "bare Starlette p99",
            None,
            f"p50 {polled.p50_ms:.1f} ms vs {bare.p50_ms:.1f} ms",
        ),
        Row(
            "304 If-None-Match",
            revalidated.requests_per_second,
            "req/s",
            bare.requests_per_second,
            "bare Starlette",
            None,
            _note("all 304" if not_modified else "NOT answered 304", revalidated),
        ),
    ]


def _bare(bench: Bench, env: dict[str, str], seconds: float) -> Load:
    with uvicorn("bench.bare_app:app", env, bench.run_dir, "/constant") as base:
        return hammer(f"{base}/constant", {}, seconds, CONNECTIONS)


def _note(note: str, load: Load) -> str:
    return note if load.bad == 0 else f"{note}; {load.bad} answers not 2xx/3xx"
