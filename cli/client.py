"""API client commands: `tally submit N [--wait]`, `tally cancel JOB_ID`, `tally stats`,
`tally jobs`, `tally accounts`.

They talk to a running server over HTTP; the URL and token come from --url/--token or
TALLY_URL/TALLY_TOKEN (prefer the variable: a flag is visible to other local users), or,
inside a folder with a running `tally dev`, from that stack (its demo token).
With `--json` each prints the API's answer as JSON, for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from cli import export
from cli.api import Api
from cli.tables import accounts_table, jobs_table, page_title, stats_table
from core.errors import Unauthorized
from core.vocabulary import LABELS, JobStatus, WaitingReason

DEFAULT_URL = "http://127.0.0.1:8000"
PageTable = Callable[[Sequence[dict[str, Any]], str, int], Table]
STATS_WAIT_SECONDS = 10.0
PIPE_WIDTH = 120


def register(commands: Any) -> None:
    """Add the client sub-commands to the `tally` parser."""
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument("--url", help=f"server URL (or TALLY_URL; default {DEFAULT_URL})")
    server.add_argument("--token", help="API token (or TALLY_TOKEN)")
    server.add_argument("--json", action="store_true", help="print JSON instead of tables")
    submit = commands.add_parser("submit", parents=[server], help="submit a job of N accounts")
    submit.add_argument("count", type=int)
    submit.add_argument("--provider", help="provider name (the server's default if not given)")
    submit.add_argument("--wait", action="store_true", help="follow the job with a progress bar")
    submit.set_defaults(handler=run_submit)
    cancel = commands.add_parser("cancel", parents=[server], help="cancel one of your jobs")
    cancel.add_argument("job_id")
    cancel.add_argument("--wait", action="store_true", help="wait until the job is cancelled")
    cancel.set_defaults(handler=run_cancel)
    stats = commands.add_parser("stats", parents=[server], help="show your stats and credits")
    stats.set_defaults(handler=run_stats)
    for name, handler, what in (("jobs", run_jobs, "jobs"), ("accounts", run_accounts, "vault")):
        listing = commands.add_parser(name, parents=[server], help=f"list your {what}")
        listing.add_argument("--limit", type=int, default=20, help="rows per page (1-100)")
        listing.add_argument("--cursor", help="resume where a previous page said `more:`")
        listing.add_argument("--all", action="store_true", help="follow every page to the end")
        listing.set_defaults(handler=handler)
    export.register(listing, server, _api)


def _api(args: argparse.Namespace) -> Api:
    token = args.token or args.env.get("TALLY_TOKEN", "")
    if not token:
        raise Unauthorized("give an API token with --token or TALLY_TOKEN")
    return Api(args.url or args.env.get("TALLY_URL", DEFAULT_URL), token)


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else PIPE_WIDTH)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def run_submit(args: argparse.Namespace) -> int:
    """Submit a job; with --wait, follow it to the end and print its counters and stats."""
    api = _api(args)
    console = _console()
    try:
        before = api.call("GET", "/api/stats")
        body: dict[str, Any] = {"count": args.count}
        if args.provider:
            body["provider"] = args.provider
        job = api.call("POST", "/api/jobs", json=body)
        if not args.json:
            console.print(f"job [bold]{job['id']}[/] {job['status']}: {job['requested']} accounts")
        if args.wait:
            job = _follow(console, api, job, quiet=args.json)
            stats = _stats_after(api, before, job)
            _print_outcome(console, args, job, stats, api.call("GET", "/api/credits"))
        elif args.json:
            _print_json(job)
    finally:
        api.close()
    return 0 if not args.wait or job["status"] == JobStatus.COMPLETED else 1


def run_cancel(args: argparse.Namespace) -> int:
    """Cancel a job; with --wait, until its calls in flight have finished."""
    api = _api(args)
    console = _console()
    try:
        job = api.call("POST", f"/api/job/{args.job_id}/cancel")
        if args.wait:
            job = _follow(console, api, job, quiet=args.json)
    finally:
        api.close()
    if args.json:
        _print_json(job)
    else:
        console.print(jobs_table([job], "Job", console.width))
    return 0 if not args.wait or job["status"] == JobStatus.CANCELLED else 1


def _follow(console: Console, api: Api, job: dict[str, Any], *, quiet: bool) -> dict[str, Any]:
    if quiet:
        for latest in api.follow(job):
            job = latest
        return job
    return _progress(console, api, job)


def _print_outcome(
    console: Console,
    args: argparse.Namespace,
    job: dict[str, Any],
    stats: dict[str, Any],
    credits: dict[str, Any],
) -> None:
    if args.json:
        _print_json({"job": job, "stats": stats, "credits": credits})
        return
    console.print(jobs_table([job], "Job", console.width))
    console.print(stats_table(stats, credits))


def _progress(console: Console, api: Api, job: dict[str, Any]) -> dict[str, Any]:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(job["status"], total=job["requested"])
        for latest in api.follow(job):
            done = latest["successful"] + latest["failures"]
            progress.update(task, completed=done, description=describe_status(latest))
            job = latest
    return job


def describe_status(job: dict[str, Any]) -> str:
    """A job's status, and why it is slow when its provider pushes back."""
    waiting = job.get("waiting")
    if not waiting:
        return str(job["status"])
    until = job.get("retry_at")
    shown = ""
    if isinstance(until, str):
        moment = datetime.fromisoformat(until).astimezone(UTC)
        shown = f" until {moment:%H:%M:%S} UTC"
    words = LABELS[WaitingReason].get(waiting, waiting)
    return f"{job['status']} (waiting: {words}{shown})"


def _stats_after(api: Api, before: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """The stats once the server has applied this job (it does so within about a second)."""
    deadline = time.monotonic() + STATS_WAIT_SECONDS
    while True:
        stats: dict[str, Any] = api.call("GET", "/api/stats")
        if stats["requested"] >= before["requested"] + job["requested"]:
            return stats
        if time.monotonic() > deadline:
            return stats
        time.sleep(0.3)


def run_stats(args: argparse.Namespace) -> int:
    """Print the stats card and the credit balance."""
    api = _api(args)
    try:
        stats, credits = api.call("GET", "/api/stats"), api.call("GET", "/api/credits")
    finally:
        api.close()
    if args.json:
        _print_json({"stats": stats, "credits": credits})
    else:
        _console().print(stats_table(stats, credits))
    return 0


def run_jobs(args: argparse.Namespace) -> int:
    """Print one page of jobs."""
    return _print_page(args, "/api/jobs", "Jobs", jobs_table)


def run_accounts(args: argparse.Namespace) -> int:
    """Print one page of the vault (never secrets)."""
    return _print_page(args, "/api/accounts", "Vault", accounts_table)


def _print_page(args: argparse.Namespace, path: str, name: str, table: PageTable) -> int:
    page = _page(args, path)
    if args.json:
        _print_json(page)
        return 0
    console = _console()
    console.print(table(page["items"], page_title(name, page), console.width))
    if page["next_cursor"]:
        console.print(
            f"more: tally {args.command} --limit {args.limit} --cursor {page['next_cursor']}"
        )
    return 0


def _page(args: argparse.Namespace, path: str) -> dict[str, Any]:
    """One page (the first, or the one at --cursor), or with --all every page in one."""
    params: dict[str, Any] = {"limit": args.limit}
    if args.cursor:
        params["cursor"] = args.cursor
    api = _api(args)
    try:
        page: dict[str, Any] = api.call("GET", path, params=params)
        items = list(page["items"])
        while args.all and page["next"]:
            page = api.call("GET", page["next"])
            items.extend(page["items"])
    finally:
        api.close()
    return {**page, "items": items} if args.all else page
