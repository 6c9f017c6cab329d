"""`tally accounts export`: a job's accounts or the whole vault to a file, with a progress bar.

The export streams; when the connection drops, it resumes after the last row written
(each row carries its cursor), so the file ends with every account exactly once.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.api import Api
from core.errors import TallyError

MAX_RESUMES = 20


def register(
    accounts: argparse.ArgumentParser,
    server: argparse.ArgumentParser,
    connect: Callable[[argparse.Namespace], Api],
) -> None:
    """Add `export` under the `accounts` command; `connect` makes the API client."""
    below = accounts.add_subparsers(dest="accounts_command", metavar="{export}")
    export = below.add_parser("export", parents=[server], help="export accounts to a file")
    export.add_argument("--job", help="one job's accounts (default: the whole vault)")
    export.add_argument("--format", choices=("csv", "ndjson"), default="csv")
    export.add_argument("-o", "--output", required=True, help="file to write ('-' for stdout)")
    export.add_argument(
        "--secrets", action="store_true", help="include each account's secret (explicit intent)"
    )
    export.set_defaults(handler=functools.partial(run_export, connect=connect))


def run_export(args: argparse.Namespace, connect: Callable[[argparse.Namespace], Api]) -> int:
    """Stream an export into a file, resuming after dropped connections."""
    api = connect(args)
    console = Console(stderr=True)
    body: dict[str, Any] = {"format": args.format, "include": "secrets" if args.secrets else "none"}
    if args.job:
        body["job_id"] = args.job
    try:
        total = _expected(api, args.job)
        with _open(args.output) as out, _bar(console) as progress:
            task = progress.add_task("export", total=total)
            written = _download(api, body, out, lambda n: progress.advance(task, n))
    finally:
        api.close()
    console.print(f"{written} accounts written to {args.output}")
    return 0


def _expected(api: Api, job_id: str | None) -> int:
    if job_id:
        return int(api.call("GET", f"/api/job/{job_id}")["successful"])
    return int(api.call("GET", "/api/stats")["business_centers"])


def _download(api: Api, body: dict[str, Any], out: IO[str], advance: Callable[[int], None]) -> int:
    written, cursor, resumes = 0, None, 0
    while True:
        request = {**body, **({"cursor": cursor} if cursor else {})}
        try:
            for line in api.stream_lines("POST", "/api/exports", json=request):
                row_cursor = _row_cursor(line, body["format"])
                if row_cursor is None:  # the CSV header
                    if cursor is None:
                        out.write(line + "\n")
                    continue
                out.write(line + "\n")
                cursor, written = row_cursor, written + 1
                advance(1)
            return written
        except (httpx.TransportError, httpx.RemoteProtocolError) as exc:
            resumes += 1
            if resumes > MAX_RESUMES:
                raise TallyError(f"export interrupted too often: {exc}") from exc


def _row_cursor(line: str, format: str) -> str | None:
    if format == "ndjson":
        return str(json.loads(line)["cursor"])
    values = next(csv.reader([line]))
    return None if values[-1] == "cursor" else values[-1]


def _open(path: str) -> IO[str]:
    if path == "-":
        return open(sys.stdout.fileno(), "w", closefd=False, encoding="utf-8")
    return Path(path).open("w", encoding="utf-8", newline="")


def _bar(console: Console) -> Progress:
    columns = (TextColumn("[bold]export"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(*columns, console=console)
