"""Row 9: how fast a cancel answers while a big job keeps the workers busy, beside a GET.

A 50,000-account sandbox job runs on the Procfile's worker (2 processes, 8 threads each). While
it runs, a second user submits small jobs one after another and cancels each one as soon as
its first slice is under way: each cancel's answer time is measured, and a GET of the same
job just before it is the reference from the same run. Last, the big job itself is
cancelled: its answer time, and how long after the answer its last account was stored
(new provider calls stop within half a second of it).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import httpx
from sqlalchemy import text

from bench.context import Bench
from bench.processes import uvicorn, worker
from bench.report import Row, Target, percentile
from core.users import create_user

PROCESSES, THREADS = 2, 8  # the Procfile's worker
BIG, SMALL = 50_000, 10_000
ANSWER_LIMIT_MS = 200.0
STOP_LIMIT_SECONDS = 0.5
LATENCY_MS = 0  # sandbox calls answer at once: the workers are as busy as they can be


@dataclass(frozen=True)
class Timings:
    """Answer times, in milliseconds, of the cancels and of the GETs beside them."""

    cancels: list[float]
    gets: list[float]
    statuses: list[int]
    big_cancel_ms: float
    big_status: int
    stored_after_answer_s: float
    big_progress: float


def run(bench: Bench) -> list[Row]:
    """p50/p99 of POST /api/job/<id>/cancel during a busy job, beside GET /api/job/<id>."""
    samples = bench.size(20, 5)
    bench.reset()
    timings = _measure(bench, bench.size(BIG, 20_000), samples)
    bench.reset()
    details = timings.__dict__
    statuses = sorted(set(timings.statuses))
    note = f"{len(timings.cancels)} cancels of running jobs, answers {statuses}"
    rows = []
    for share, word in ((0.5, "p50"), (0.99, "p99")):
        rows.append(
            Row(
                f"cancel answer during a busy {BIG:,}-account job, {word}",
                percentile(timings.cancels, share),
                "ms",
                percentile(timings.gets, share),
                f"GET /api/job/<id> {word}, same run",
                Target("figure", "<=", ANSWER_LIMIT_MS, "ms"),
                note,
                details if share == 0.5 else {},
            )
        )
    rows.append(
        Row(
            "cancel answer of the busy job itself",
            timings.big_cancel_ms,
            "ms",
            percentile(timings.gets, 0.5),
            "GET p50, same run",
            Target("figure", "<=", ANSWER_LIMIT_MS, "ms"),
            f"answered {timings.big_status} at {timings.big_progress:.0%} done",
        )
    )
    rows.append(
        Row(
            "last account stored after the cancel's answer",
            timings.stored_after_answer_s,
            "s",
            target=Target("figure", "<=", STOP_LIMIT_SECONDS, "s"),
            note="calls already in flight may still land; no new one starts",
        )
    )
    return rows


def _measure(bench: Bench, big: int, samples: int) -> Timings:
    env = bench.env(TALLY_SANDBOX_LATENCY_MS=str(LATENCY_MS))
    owner = create_user(bench.database.sessions, "busy", credits=2 * big)
    other = create_user(bench.database.sessions, "canceller", credits=samples * SMALL)
    with (
        worker(env, bench.run_dir, PROCESSES, THREADS),
        uvicorn("web.main:app", env, bench.run_dir, "/healthz", factory=True) as base,
        httpx.Client(base_url=base, timeout=60) as client,
    ):
        # The big job first: cancelled in full flow, then its last stored account timed.
        big_id = _submit(client, owner.token, big)
        _wait_progress(bench, big_id, 0.2)
        progress = _progress(bench, big_id)
        big_ms, big_status = _timed(client, "POST", f"/api/job/{big_id}/cancel", owner.token)
        answered = _database_now(bench)
        _wait_terminal(bench, big_id)
        stored_after = _last_stored(bench, big_id) - answered
        # Then a second big job keeps the workers busy while small jobs are cancelled.
        busy_id = _submit(client, owner.token, big)
        _wait_progress(bench, busy_id, 0.05)
        cancels, gets, statuses = [], [], []
        for _ in range(samples):
            job_id = _submit(client, other.token, SMALL)
            _wait_running(bench, job_id)
            gets.append(_timed(client, "GET", f"/api/job/{job_id}", other.token)[0])
            elapsed, status = _timed(client, "POST", f"/api/job/{job_id}/cancel", other.token)
            cancels.append(elapsed)
            statuses.append(status)
        _wait_terminal(bench, busy_id)
    return Timings(
        cancels,
        gets,
        statuses,
        big_ms,
        big_status,
        stored_after,
        progress,
    )


def _submit(client: httpx.Client, token: str, count: int) -> uuid.UUID:
    answer = client.post("/api/jobs", json={"count": count}, headers=_auth(token))
    answer.raise_for_status()
    return uuid.UUID(answer.json()["id"])


def _timed(client: httpx.Client, method: str, path: str, token: str) -> tuple[float, int]:
    started = time.perf_counter()
    answer = client.request(method, path, headers=_auth(token))
    return (time.perf_counter() - started) * 1000, answer.status_code


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _scalar(bench: Bench, query: str, job_id: uuid.UUID | None = None) -> object:
    with bench.database.engine.connect() as connection:
        return connection.execute(text(query), {"id": job_id}).scalar()


def _progress(bench: Bench, job_id: uuid.UUID) -> float:
    query = "SELECT (successful + failures)::float / requested FROM jobs WHERE id = :id"
    return float(str(_scalar(bench, query, job_id)))


def _wait_progress(bench: Bench, job_id: uuid.UUID, share: float) -> None:
    deadline = time.monotonic() + 300
    while _progress(bench, job_id) < share and time.monotonic() < deadline:
        time.sleep(0.02)


def _wait_running(bench: Bench, job_id: uuid.UUID) -> None:
    query = "SELECT count(*) FROM job_slices WHERE job_id = :id AND status <> 'pending'"
    deadline = time.monotonic() + 60
    while int(str(_scalar(bench, query, job_id))) == 0 and time.monotonic() < deadline:
        time.sleep(0.005)


def _wait_terminal(bench: Bench, job_id: uuid.UUID) -> None:
    query = "SELECT finished_at IS NOT NULL FROM jobs WHERE id = :id"
    deadline = time.monotonic() + 300
    while not _scalar(bench, query, job_id) and time.monotonic() < deadline:
        time.sleep(0.02)


def _database_now(bench: Bench) -> float:
    return float(str(_scalar(bench, "SELECT extract(epoch FROM clock_timestamp())")))


def _last_stored(bench: Bench, job_id: uuid.UUID) -> float:
    query = "SELECT extract(epoch FROM max(created_at)) FROM user_accounts WHERE job_id = :id"
    return float(str(_scalar(bench, query, job_id)))
