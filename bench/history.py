"""Row 9: a year of history. What a report, a recompute, a page, a scrape and a prune cost.

Over finished jobs and vault rows seeded in SQL (bench/history_seed.py; 10,000 jobs and
100,000 vault rows by default, 1,000,000 and 10,000,000 with `--full-history`), with the
Procfile's worker, reconcile daemon and web running:

- one account submitted until `/api/stats` counts it, while reports run back to back
  (from this process, as `tally report --run` does), against the same at a quiet moment;
- a report's and a recompute's duration, against bare aggregates over the same tables;
- the heaviest user's first vault page and the page after 9,000 accounts, against a user
  with 10,000 accounts; one `/metrics` scrape against `/healthz`;
- the rows retention deletes (reconcile/retention.py, the default policy), and whether a
  report after the prune still finds no drift.
"""

from __future__ import annotations

import secrets
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import text

from bench import seed
from bench.context import Bench
from bench.history_seed import History, analyze, seed_history
from bench.processes import reconcile, uvicorn, worker
from bench.report import Row, Target
from core.users import create_user
from reconcile.recompute import recompute_business_centers
from reconcile.report import run_report
from reconcile.retention import Policy, prune

PROBES = 8
REQUESTS = 7  # per page or endpoint timed; the median is kept
DEEP_OFFSET = 9_000
PAGE = "/api/accounts?limit=50"
WALK = "/api/accounts?limit=100"  # the largest page, to reach the deep page's cursor
# The floor of any report: one pass over each table it reads, grouped by user.
BARE_CHECK = (
    "SELECT user_id, sum(requested), sum(successful), sum(failures) FROM jobs GROUP BY user_id",
    "SELECT user_id, count(*) FROM user_accounts WHERE deleted_at IS NULL GROUP BY user_id",
    "SELECT user_id, sum(amount) FROM credit_ledger GROUP BY user_id",
    "SELECT job_id, sum(amount) FROM credit_ledger WHERE job_id IS NOT NULL GROUP BY job_id",
    "SELECT job_id, count(*) FROM user_accounts GROUP BY job_id",
)
BARE_RECOMPUTE = (BARE_CHECK[1],)
PRUNED_TABLES = ("outbox", "job_slices", "reconcile_reports")
# The daemon keeps out of the way: no report, recompute or prune of its own during the run.
QUIET_DAEMON = {
    "TALLY_REPORT_INTERVAL": "86400",
    "TALLY_RECOMPUTE_INTERVAL": "86400",
    "TALLY_RETENTION_INTERVAL": "86400",
    "TALLY_RETENTION_DAYS": "36500",
    "TALLY_REPORTS_KEPT": "1000000",
}


def run(bench: Bench) -> list[Row]:
    """Seed the history, measure with the services running, then prune and measure again."""
    full = bench.full_history
    jobs, vault, users = (1_000_000, 10_000_000, 10_000) if full else (10_000, 100_000, 1_000)
    bench.reset()
    history = seed_history(bench, jobs, vault, users)
    token = secrets.token_urlsafe(24)
    env = bench.env(TALLY_METRICS_TOKEN=token, **QUIET_DAEMON)
    with (
        worker(env, bench.run_dir, processes=1, threads=4),
        reconcile(env, bench.run_dir),
        uvicorn("web.main:app", env, bench.run_dir, "/healthz", factory=True) as base,
    ):
        _wait_daemon_idle(bench)
        stats = _stats_latency(bench, base)
        pages = _pages(base, history)
        scrape = _median_get(base, "/metrics", {"Authorization": f"Bearer {token}"})
        health = _median_get(base, "/healthz", {})
    durations = _durations(bench, stats.pop("report_seconds"))
    pruned = _prune(bench)
    bench.reset()
    sizes = {"jobs": jobs, "vault_rows": history.vault_rows, "users": history.users}
    details = {**sizes, "seed_seconds": round(history.seconds, 1), **stats, **pages}
    return [
        *_latency_rows(stats, details),
        *_duration_rows(durations, jobs, history.vault_rows),
        *_page_rows(pages),
        Row("GET /metrics over the history", scrape, "s", health, "GET /healthz", None),
        *_prune_rows(pruned),
    ]


def _wait_daemon_idle(bench: Bench, timeout: float = 600.0) -> None:
    """Wait until the daemon's start-up work (its first recompute) has finished."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tally-reconcile' "
        "AND state = 'active' AND now() - query_start > interval '200 ms'"
    )
    deadline, calm = time.monotonic() + timeout, 0
    while calm < 5 and time.monotonic() < deadline:
        with bench.database.engine.connect() as connection:
            calm = calm + 1 if connection.execute(query).scalar_one() == 0 else 0
        time.sleep(0.1)


def _stats_latency(bench: Bench, base: str) -> dict[str, Any]:
    """Submit → counted in /api/stats: quiet, then with reports running back to back."""
    probe = create_user(bench.database.sessions, "probe", credits=10**6)
    settings = bench.settings()
    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {probe.token}"})

    def one() -> float:
        seen = client.get("/api/stats").json()["requested"]
        started = time.perf_counter()
        seed.submit_jobs(bench, settings, [probe.user_id], [1])
        while client.get("/api/stats").json()["requested"] == seen:
            time.sleep(0.005)
        return time.perf_counter() - started

    with client:
        one()  # warm-up: the worker's first slice opens its connections
        quiet = [one() for _ in range(PROBES)]
        reports: list[float] = []
        stop, started = threading.Event(), threading.Event()

        def reporting() -> None:
            while not stop.is_set():
                started.set()
                reports.append(
                    run_report(
                        bench.database.sessions, repair=False, origin="bench"
                    ).duration_seconds
                )

        reporter = threading.Thread(target=reporting)
        reporter.start()
        started.wait()
        during = [one() for _ in range(PROBES)]
        stop.set()
        reporter.join()
    return {"quiet_seconds": quiet, "during_report_seconds": during, "report_seconds": reports}


def _durations(bench: Bench, reports: list[float]) -> dict[str, float]:
    """Median report and recompute durations, and the bare aggregates they are compared with."""
    recompute = [
        _timed(lambda: recompute_business_centers(bench.database.sessions)) for _ in range(2)
    ]
    bare_check = [_timed(lambda: _bare(bench, BARE_CHECK)) for _ in range(2)]
    bare_recompute = [_timed(lambda: _bare(bench, BARE_RECOMPUTE)) for _ in range(2)]
    return {
        "report": statistics.median(reports),
        "bare_check": min(bare_check),
        "recompute": statistics.median(recompute),
        "bare_recompute": min(bare_recompute),
        "reports_run": float(len(reports)),
    }


def _pages(base: str, history: History) -> dict[str, float]:
    """Median seconds of the heaviest and the reference user's first and deep vault pages
    (the deep one reached by following `next` past DEEP_OFFSET accounts)."""
    timed: dict[str, float] = {}
    for who, user in (("heaviest", history.heaviest), ("reference", history.reference)):
        headers = {"Authorization": f"Bearer {user.token}"}
        deep = f"{PAGE}&cursor={_cursor_after(base, headers, DEEP_OFFSET)}"
        for depth, path in (("first", PAGE), ("deep", deep)):
            timed[f"{who}_{depth}_page_seconds"] = _median_get(base, path, headers)
    return timed


def _cursor_after(base: str, headers: dict[str, str], accounts: int) -> str:
    """The cursor of the page that starts after the newest `accounts` vault rows."""
    path, seen = WALK, 0
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        while True:
            page = client.get(path).raise_for_status().json()
            seen += len(page["items"])
            cursor = page["next_cursor"]
            if seen >= accounts or cursor is None:
                return str(cursor or "")
            path = f"{WALK}&cursor={cursor}"


def _median_get(base: str, path: str, headers: dict[str, str]) -> float:
    """Median seconds of REQUESTS sequential GETs on one connection (after one warm-up)."""
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        client.get(path).raise_for_status()
        return statistics.median(
            _timed(lambda: client.get(path).raise_for_status()) for _ in range(REQUESTS)
        )


def _prune(bench: Bench) -> dict[str, Any]:
    """Rows and sizes of the pruned tables before and after the default retention policy."""
    before = _table_figures(bench)
    started = time.perf_counter()
    pruned = prune(bench.database.sessions, Policy.from_settings(bench.settings()), lambda: False)
    seconds = time.perf_counter() - started
    analyze(bench)
    after = _table_figures(bench)
    drift = run_report(bench.database.sessions, repair=False, origin="bench").drift_count
    return {
        "before": before,
        "after": after,
        "seconds": seconds,
        "pruned": pruned.total,
        "drift": drift,
    }


def _table_figures(bench: Bench) -> dict[str, dict[str, int]]:
    figures = {}
    with bench.database.engine.connect() as connection:
        for table in (*PRUNED_TABLES, "jobs", "user_accounts", "credit_ledger"):
            rows = connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            size = connection.execute(
                text(f"SELECT pg_total_relation_size('{table}')")
            ).scalar_one()
            figures[table] = {"rows": int(rows), "bytes": int(size)}
    return figures


def _latency_rows(stats: dict[str, Any], details: dict[str, Any]) -> list[Row]:
    quiet, during = stats["quiet_seconds"], stats["during_report_seconds"]
    return [
        Row(
            "history: submit→/api/stats during reports (p50)",
            statistics.median(during),
            "s",
            statistics.median(quiet),
            "quiet p50",
            None,
            f"{len(during)} probes while reports ran back to back",
            details,
        ),
        Row(
            "history: delay a report adds (max - quiet max)",
            max(during) - max(quiet),
            "s",
            max(quiet),
            "quiet max",
            Target("figure", "<=", 1.0, "s"),
        ),
    ]


def _duration_rows(durations: dict[str, float], jobs: int, vault: int) -> list[Row]:
    return [
        Row(
            f"history: report ({jobs:,} jobs, {vault:,} vault rows)",
            durations["report"],
            "s",
            durations["bare_check"],
            "bare aggregates",
            None,
            f"median of {durations['reports_run']:.0f} reports, no lock held",
        ),
        Row(
            "history: recompute business_centers",
            durations["recompute"],
            "s",
            durations["bare_recompute"],
            "bare GROUP BY",
            Target("ratio", "<=", 2.0),
            "median of 2",
        ),
    ]


def _page_rows(pages: dict[str, float]) -> list[Row]:
    return [
        Row(
            f"history: heaviest user's {depth} vault page",
            pages[f"heaviest_{depth}_page_seconds"],
            "s",
            pages[f"reference_{depth}_page_seconds"],
            "10,000-account user",
            Target("ratio", "<=", 2.0),
            f"{where}, limit 50, median of {REQUESTS}",
        )
        for depth, where in (
            ("first", "the newest accounts"),
            ("deep", f"after {DEEP_OFFSET:,} accounts, by cursor"),
        )
    ]


def _prune_rows(pruned: dict[str, Any]) -> list[Row]:
    before, after = pruned["before"], pruned["after"]
    note = (
        f"prune {pruned['seconds']:.1f}s for {pruned['pruned']:,} rows; "
        f"report after it: {pruned['drift']} drift"
    )
    return [
        Row(
            f"history: {table} rows after retention",
            after[table]["rows"],
            "rows",
            before[table]["rows"],
            "rows before",
            None,
            note,
            {"bytes_before": before[table]["bytes"], "bytes_after": after[table]["bytes"]},
        )
        for table in PRUNED_TABLES
    ] + [
        Row(
            "history: jobs, ledger and vault rows after retention",
            sum(after[t]["rows"] for t in ("jobs", "user_accounts", "credit_ledger")),
            "rows",
            sum(before[t]["rows"] for t in ("jobs", "user_accounts", "credit_ledger")),
            "rows before",
            Target("ratio", ">=", 1.0),
            "never pruned",
        )
    ]


def _bare(bench: Bench, statements: tuple[str, ...]) -> None:
    with bench.database.sessions() as session, session.begin():
        session.execute(text("SET LOCAL jit = off"))
        for statement in statements:  # the server does the work; one row comes back
            session.execute(text(f"SELECT count(*) FROM ({statement}) AS t")).scalar_one()


def _timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started
