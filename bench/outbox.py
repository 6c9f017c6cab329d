"""Row 3: outbox apply rate on a backlog, and completion → visible-in-/api/stats latency."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

import httpx
from sqlalchemy import text

from bench import seed
from bench.context import Bench
from bench.processes import reconcile, uvicorn, worker
from bench.report import Row, Target, percentile
from core.users import create_user
from harness.outbox import apply_pending

BACKLOG = text(
    "INSERT INTO outbox (topic, key, user_id, payload) "
    "SELECT 'job.completed', 'bench-' || n, (CAST(:users AS uuid[]))[1 + n % :count], "
    "jsonb_build_object('job_id', gen_random_uuid()::text, 'requested', 100, "
    "'successful', 97, 'failures', 3) FROM generate_series(1, :rows) AS n"
)
MARK_BATCH = text(
    "UPDATE outbox SET applied_at = now() WHERE id = ANY(ARRAY(SELECT id FROM outbox "
    "WHERE applied_at IS NULL ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED))"
)
LOAD_USERS, LOAD_JOB_ITEMS, LOAD_JOBS_PER_SECOND = 20, 100, 10.0


def run(bench: Bench) -> list[Row]:
    """Both halves of row 3."""
    return [*apply_rate(bench), *visibility_latency(bench)]


def apply_rate(bench: Bench) -> list[Row]:
    """Rows/s of apply_pending over a backlog, vs only marking the same backlog applied."""
    rows, users = bench.size(100_000, 20_000), bench.size(1_000, 200)
    batch = bench.settings().apply_batch
    bench.reset()
    owners = seed.create_users(bench, users, credits=0)
    mark_runs = [_mark_rate(bench, owners, rows, batch)]
    _backlog(bench, owners, rows)
    started = time.perf_counter()
    applied = apply_pending(bench.database.sessions, batch, max_batches=10**6)
    seconds = time.perf_counter() - started
    mark_runs.append(_mark_rate(bench, owners, rows, batch))
    mark = max(mark_runs)
    bench.reset()
    details = {
        "rows": rows,
        "users": users,
        "mark_runs": mark_runs,
        "batch": batch,
        "applied": applied,
        "seconds": seconds,
    }
    return [
        Row(
            f"outbox apply ({rows:,} rows, {users:,} users)",
            applied / seconds,
            "rows/s",
            mark,
            "mark-applied only",
            Target("figure", ">=", 50_000, "rows/s"),
            "" if applied == rows else f"applied {applied} of {rows}",
            details,
        ),
    ]


def _backlog(bench: Bench, owners: list[uuid.UUID], rows: int) -> None:
    with bench.database.engine.begin() as connection:
        connection.execute(text("TRUNCATE outbox, user_stats"))
        connection.execute(
            BACKLOG, {"users": [str(o) for o in owners], "count": len(owners), "rows": rows}
        )
        connection.execute(text("ANALYZE outbox"))


def _mark_rate(bench: Bench, owners: list[uuid.UUID], rows: int, batch: int) -> float:
    """The floor of any apply: flag the same backlog applied, batch by batch, nothing else."""
    _backlog(bench, owners, rows)
    started = time.perf_counter()
    marked = 0
    while True:
        with bench.database.sessions() as session, session.begin():
            done = int(session.execute(MARK_BATCH, {"limit": batch}).rowcount)  # type: ignore[attr-defined]
        marked += done
        if done < batch:
            break
    return marked / (time.perf_counter() - started)


@dataclass
class Probe:
    """One probe job: when the database says it finished, and when /api/stats showed it."""

    job_id: uuid.UUID
    visible_at: float


def visibility_latency(bench: Bench) -> list[Row]:
    """Completion → /api/stats latency of probe jobs while other jobs keep the system busy."""
    seconds = bench.size(20.0, 6.0)
    settings = bench.settings()
    bench.reset()
    owners = seed.create_users(bench, LOAD_USERS, credits=10**9)
    probe_user = create_user(bench.database.sessions, "probe", credits=10**6)
    env = bench.env()
    with (
        worker(env, bench.run_dir),
        reconcile(env, bench.run_dir),
        uvicorn("web.main:app", env, bench.run_dir, "/healthz", factory=True) as base,
    ):
        stop = threading.Event()
        load = threading.Thread(target=_steady_load, args=(bench, owners, stop), daemon=True)
        load.start()
        probes = _probe(bench, base, probe_user.user_id, probe_user.token, seconds)
        stop.set()
        load.join()
    latencies = _latencies(bench, probes)
    db_p50, db_p99, db_n = _outbox_lag(bench)
    bench.reset()
    interval = settings.intervals.apply
    details = {
        "probes": len(latencies),
        "load_seconds": seconds,
        "load_accounts_per_second": LOAD_JOBS_PER_SECOND * LOAD_JOB_ITEMS,
        "outbox_created_to_applied": {"n": db_n, "p50": db_p50, "p99": db_p99},
        "latencies": [round(x, 4) for x in latencies],
    }
    reference = "apply interval (config)"
    return [
        Row(
            "completion→/api/stats p50",
            percentile(latencies, 0.5),
            "s",
            interval,
            reference,
            None,
            f"{len(latencies)} probe jobs under load",
            details,
        ),
        Row(
            "completion→/api/stats p99",
            percentile(latencies, 0.99),
            "s",
            interval,
            reference,
            Target("figure", "<=", 0.1, "s"),
            f"outbox created→applied p99 {db_p99:.3f}s",
        ),
    ]


def _steady_load(bench: Bench, owners: list[uuid.UUID], stop: threading.Event) -> None:
    settings = bench.settings()
    period = 1.0 / LOAD_JOBS_PER_SECOND
    sent = 0
    started = time.monotonic()
    while not stop.is_set():
        seed.submit_jobs(bench, settings, [owners[sent % len(owners)]], [LOAD_JOB_ITEMS])
        sent += 1
        stop.wait(max(0.0, started + sent * period - time.monotonic()))


def _probe(bench: Bench, base: str, user_id: uuid.UUID, token: str, seconds: float) -> list[Probe]:
    """Submit one-item jobs one after another; note when each shows in /api/stats."""
    settings = bench.settings()
    probes: list[Probe] = []
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
        seen = client.get("/api/stats").json()["requested"]
        while time.monotonic() < deadline:
            job_id = seed.submit_jobs(bench, settings, [user_id], [1])[0]
            limit = time.monotonic() + 30
            while client.get("/api/stats").json()["requested"] == seen:
                if time.monotonic() > limit:
                    return probes
                time.sleep(0.005)
            probes.append(Probe(job_id, time.time()))
            seen += 1
    return probes


def _latencies(bench: Bench, probes: list[Probe]) -> list[float]:
    with bench.database.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id, extract(epoch FROM finished_at) AS at FROM jobs WHERE id = ANY(:ids)"),
            {"ids": [p.job_id for p in probes]},
        ).all()
    finished = {row.id: float(row.at) for row in rows if row.at is not None}
    return [p.visible_at - finished[p.job_id] for p in probes if p.job_id in finished]


def _outbox_lag(bench: Bench) -> tuple[float, float, int]:
    """p50 and p99 of outbox created_at → applied_at for the run's job.completed rows."""
    with bench.database.engine.connect() as connection:
        lags = (
            connection.execute(
                text(
                    "SELECT extract(epoch FROM applied_at - created_at) FROM outbox "
                    "WHERE topic = 'job.completed' AND applied_at IS NOT NULL"
                )
            )
            .scalars()
            .all()
        )
    values = [float(v) for v in lags]
    return percentile(values, 0.5), percentile(values, 0.99), len(values)
