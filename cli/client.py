"""API client commands: `tally submit N [--wait]`, `tally stats`, `tally jobs`, `tally accounts`.

They talk to a running server over HTTP; the URL and token come from --url/--token or
TALLY_URL/TALLY_TOKEN (prefer the variable: a flag is visible to other local users).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
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

from core.errors import InsufficientCredits, InvalidInput, NotFound, TallyError, Unauthorized
from core.stats import STAT_NAMES
from core.vocabulary import JobStatus

DEFAULT_URL = "http://127.0.0.1:8000"
LONG_POLL_SECONDS = 25
STATS_WAIT_SECONDS = 10.0
PIPE_WIDTH = 120


def register(commands: Any) -> None:
    """Add the client sub-commands to the `tally` parser."""
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument("--url", help=f"server URL (or TALLY_URL; default {DEFAULT_URL})")
    server.add_argument("--token", help="API token (or TALLY_TOKEN)")
    submit = commands.add_parser("submit", parents=[server], help="submit a job of N accounts")
    submit.add_argument("count", type=int)
    submit.add_argument("--provider", help="provider name (the server's default if not given)")
    submit.add_argument("--wait", action="store_true", help="follow the job with a progress bar")
    submit.set_defaults(handler=run_submit)
    stats = commands.add_parser("stats", parents=[server], help="show your stats and credits")
    stats.set_defaults(handler=run_stats)
    for name, handler, what in (("jobs", run_jobs, "jobs"), ("accounts", run_accounts, "vault")):
        listing = commands.add_parser(name, parents=[server], help=f"list your {what}")
        listing.add_argument("--limit", type=int, default=20)
        listing.add_argument("--offset", type=int, default=0)
        listing.set_defaults(handler=handler)


class Api:
    """A small client of the tally HTTP API."""

    def __init__(self, url: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=60)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request and return its JSON body, or raise the matching domain error."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise TallyError(f"cannot reach {self._http.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise _error(response)
        return None if response.status_code == 304 else response.json()

    def follow(self, job: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Yield the job each time it changes (long-poll), until it is terminal."""
        etag = ""
        while not JobStatus(job["status"]).terminal:
            headers = {"If-None-Match": etag} if etag else {}
            response = self._http.get(
                f"/api/job/{job['id']}", params={"wait": LONG_POLL_SECONDS}, headers=headers
            )
            if response.status_code >= 400:
                raise _error(response)
            if response.status_code == 200:
                etag = response.headers.get("etag", "")
                job = response.json()
                yield job


def _error(response: httpx.Response) -> TallyError:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        error = {"message": f"HTTP {response.status_code}"}
    message = str(error.get("message", response.reason_phrase))
    if response.status_code == 402:
        return InsufficientCredits(int(error.get("needed", 0)), int(error.get("balance", 0)))
    kinds: dict[int, type[TallyError]] = {400: InvalidInput, 401: Unauthorized, 404: NotFound}
    return kinds.get(response.status_code, TallyError)(message)


def _api(args: argparse.Namespace) -> Api:
    token = args.token or os.environ.get("TALLY_TOKEN", "")
    if not token:
        raise Unauthorized("give an API token with --token or TALLY_TOKEN")
    return Api(args.url or os.environ.get("TALLY_URL", DEFAULT_URL), token)


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else PIPE_WIDTH)


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
        console.print(f"job [bold]{job['id']}[/] {job['status']}: {job['requested']} accounts")
        if not args.wait:
            return 0
        job = _progress(console, api, job)
        console.print(jobs_table([job], title="Job"))
        console.print(stats_table(_stats_after(api, before, job), api.call("GET", "/api/credits")))
    finally:
        api.close()
    return 0 if job["status"] == JobStatus.COMPLETED else 1


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
            progress.update(task, completed=done, description=latest["status"])
            job = latest
    return job


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
        _console().print(
            stats_table(api.call("GET", "/api/stats"), api.call("GET", "/api/credits"))
        )
    finally:
        api.close()
    return 0


def run_jobs(args: argparse.Namespace) -> int:
    """Print one page of jobs."""
    api = _api(args)
    try:
        page = api.call("GET", "/api/jobs", params={"limit": args.limit, "offset": args.offset})
    finally:
        api.close()
    _console().print(jobs_table(page["items"], title=_page_title("Jobs", page)))
    return 0


def run_accounts(args: argparse.Namespace) -> int:
    """Print one page of the vault (never secrets)."""
    api = _api(args)
    try:
        page = api.call("GET", "/api/accounts", params={"limit": args.limit, "offset": args.offset})
    finally:
        api.close()
    table = Table(title=_page_title("Vault", page))
    for column in ("id", "username", "external id", "provider", "job", "created"):
        table.add_column(column)
    for a in page["items"]:
        table.add_row(
            a["id"], a["username"], a["external_id"], a["provider"], a["job_id"], a["created_at"]
        )
    _console().print(table)
    return 0


def _page_title(name: str, page: dict[str, Any]) -> str:
    last = page["offset"] + len(page["items"])
    first = page["offset"] + 1 if page["items"] else 0
    return f"{name} {first}-{last} of {page['total']}"


def stats_table(stats: dict[str, Any], credits: dict[str, Any]) -> Table:
    """The stats card and balance as a two-column table."""
    table = Table(title="Stats", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name in STAT_NAMES:
        table.add_row(name, f"{stats[name]:,}")
    table.add_row("credits", f"{credits['balance']:,}")
    return table


def jobs_table(jobs: list[dict[str, Any]], title: str) -> Table:
    """Jobs with their counters and progress."""
    table = Table(title=title)
    for column in ("id", "status", "created"):
        table.add_column(column)
    for column in ("requested", "successful", "failures", "progress"):
        table.add_column(column, justify="right")
    for j in jobs:
        table.add_row(
            j["id"],
            j["status"],
            j["created_at"],
            f"{j['requested']:,}",
            f"{j['successful']:,}",
            f"{j['failures']:,}",
            f"{j['progress']:.0%}",
        )
    return table
