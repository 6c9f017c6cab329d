"""`python -m bench [all|NAME ...] [--quick]`: run benchmarks, print the table, save the JSON."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.context import Bench
from bench.report import Row, table, write_json
from bench.servers import running_servers
from core.migrate import PROJECT_ROOT

# name -> module; each module has run(bench) -> list[Row]. `all` runs them in this order.
BENCHMARKS = {
    "pipeline": "bench.pipeline",
    "io": "bench.io_bound",
    "outbox": "bench.outbox",
    "polling": "bench.polling",
    "metrics": "bench.metrics",
    "recompute": "bench.recompute",
    "retry": "bench.retry",
    "growth": "bench.growth",
    "provider": "bench.provider",
    "fairness": "bench.fairness",
    "crowd": "bench.crowd",
    "history": "bench.history",
    "cancel": "bench.cancel",
    "capacity": "bench.capacity",
    "flood": "bench.flood",
    "hung": "bench.hung",
}
RESULTS = PROJECT_ROOT / ".bench"


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names", nargs="*", default=["all"], help="all, or " + ", ".join(BENCHMARKS)
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, a few seconds each")
    parser.add_argument(
        "--full-history",
        action="store_true",
        help="history at 1,000,000 jobs and 10,000,000 vault rows (default 10,000 and 100,000)",
    )
    parser.add_argument("--profile", action="store_true", help="sample the worker with py-spy")
    parser.add_argument("--database-url", help="PostgreSQL server to create the bench database on")
    parser.add_argument("--keep-logs", action="store_true", help="keep service logs in .bench/")
    args = parser.parse_args(argv)
    names = list(BENCHMARKS) if "all" in args.names else args.names
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    args.names = names
    return args


def run_one(bench: Bench, name: str) -> tuple[list[Row], dict[str, Any]]:
    """Run one benchmark; a failure is reported in its place, never hidden."""
    started, load_before = time.monotonic(), os.getloadavg()[0]
    print(f"== {name} ...", flush=True)
    try:
        rows: list[Row] = importlib.import_module(BENCHMARKS[name]).run(bench)
        error = None
    except Exception:
        rows, error = [], traceback.format_exc()
        print(error, file=sys.stderr)
    seconds = time.monotonic() - started
    print(f"   {name} took {seconds:.1f} s", flush=True)
    for row in rows:
        print("   " + table([row]).splitlines()[-1], flush=True)
    # The machine's 1-minute load average around the run: context for noisy figures.
    load = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return rows, {"seconds": round(seconds, 2), "load_average": load, "error": error}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks against fresh servers and report them."""
    args = parse(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    scratch = Path(tempfile.mkdtemp(prefix="tally-bench-"))
    run_dir = RESULTS / f"run-{stamp}" if args.keep_logs or args.profile else scratch / "logs"
    rows: list[Row] = []
    runs: dict[str, Any] = {}
    started = time.monotonic()
    try:
        with running_servers(scratch, args.database_url) as servers:
            bench = Bench(
                servers,
                run_dir,
                quick=args.quick,
                profile=args.profile,
                full_history=args.full_history,
            )
            os.environ.update(bench.env())
            try:
                for name in args.names:
                    found, runs[name] = run_one(bench, name)
                    rows += found
            finally:
                bench.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    meta = _meta(args, servers.postgres_version, stamp, time.monotonic() - started, runs)
    path = RESULTS / f"{stamp}-{'quick' if args.quick else 'full'}.json"
    write_json(path, meta, rows)
    print()
    print(table(rows))
    print(f"\n{len(rows)} rows in {meta['seconds']:.0f} s; written to {path}")
    return 1 if any(r["error"] for r in runs.values()) else 0


def _meta(
    args: argparse.Namespace, pg: str, stamp: str, seconds: float, runs: dict[str, Any]
) -> dict[str, Any]:
    return {
        "started": stamp,
        "seconds": round(seconds, 1),
        "quick": args.quick,
        "benchmarks": runs,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "postgres": pg,
        },
    }


if __name__ == "__main__":
    sys.exit(main())
