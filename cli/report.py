"""`tally report`: read the latest reconciliation report, or run one now."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from core.database import Database
from core.errors import NotFound
from core.settings import Settings
from reconcile.report import run_report
from reconcile.report_store import Report, get_report

# Exit status when the report shows drift that is still there.
DRIFT_STATUS = 2
# Width of the tables when the output is not a terminal (ids are never cut).
PIPE_WIDTH = 120


def register(commands: Any) -> None:
    """Add the `report` sub-command to the `tally` parser."""
    parser = commands.add_parser(
        "report",
        help="show the latest reconciliation report (or run one)",
        description="Show a reconciliation report. Exit status: 0 when it shows no drift "
        f"left unrepaired, {DRIFT_STATUS} when it does, 1 on error.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--run", action="store_true", help="run a report now and show it")
    parser.add_argument(
        "--repair",
        action="store_true",
        help="run a report now and correct the drift it can (implies --run)",
    )
    parser.add_argument("--id", type=int, default=None, help="show this report, not the latest")
    parser.add_argument("--limit", type=int, default=50, help="drift rows to show (default 50)")
    parser.set_defaults(handler=run_report_command)


def run_report_command(args: argparse.Namespace) -> int:
    """Run or fetch a report, print it, and exit 2 if drift remains."""
    settings = Settings.from_env(args.env)
    database = Database.from_settings_url(settings.database_url)
    try:
        report = _obtain(database, settings, args)
    finally:
        database.dispose()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print_report(Console(width=None if sys.stdout.isatty() else PIPE_WIDTH), report)
    return DRIFT_STATUS if report.unrepaired else 0


def _obtain(database: Database, settings: Settings, args: argparse.Namespace) -> Report:
    if args.run or args.repair:
        report = run_report(
            database.sessions, repair=args.repair or settings.repair_drift, origin="cli"
        )
        report_id: int | None = report.id
    else:
        report_id = args.id
    found = get_report(database.sessions, report_id, drift_limit=max(args.limit, 0))
    if found is None:
        if report_id is None:
            raise NotFound("no reconciliation report yet; run `tally report --run`")
        raise NotFound(f"no reconciliation report {report_id}")
    return found


def print_report(console: Console, report: Report) -> None:
    """Print a report as a summary table followed by its drift rows."""
    console.print(summary_table(report))
    if report.drifts:
        console.print(drift_table(report))
    hidden = report.drift_count - len(report.drifts)
    if hidden > 0:
        console.print(f"… and {hidden} more drift rows (use --limit or --json)")


def summary_table(report: Report) -> Table:
    """The report's figures, one per line."""
    table = Table(title=f"Reconciliation report #{report.id}", show_header=False)
    table.add_column("figure", style="bold")
    table.add_column("value")
    swept = (
        "not tracked (run outside the daemon)"
        if report.jobs_swept is None
        else f"{report.jobs_swept} jobs ({report.slices_resent} turn messages sent)"
    )
    table.add_row("started", report.started_at.isoformat(timespec="seconds"))
    table.add_row("took", f"{report.duration_seconds:.2f} s ({report.origin})")
    table.add_row("users checked", str(report.users_checked))
    table.add_row(
        "outbox backlog",
        f"{report.outbox_backlog} rows, oldest pending {report.oldest_pending_seconds:.1f} s",
    )
    table.add_row("swept since last report", swept)
    table.add_row("drift", _drift_summary(report))
    table.add_row("orphans", f"{report.orphans} accounts a provider may hold outside the vault")
    return table


def drift_table(report: Report) -> Table:
    """One line per drift: the figure, what it should be, what it was."""
    table = Table(title="Drift (expected = from source tables, actual = stored)")
    table.add_column("subject")
    table.add_column("id", no_wrap=True, min_width=36)
    table.add_column("field", no_wrap=True)
    for name in ("expected", "actual", "difference"):
        table.add_column(name, justify="right")
    table.add_column("repaired")
    for d in report.drifts:
        table.add_row(
            d.subject,
            d.subject_id,
            d.field,
            str(d.expected),
            str(d.actual),
            f"{d.actual - d.expected:+d}",
            "[green]yes[/]" if d.repaired else "[red]no[/]",
        )
    return table


def _drift_summary(report: Report) -> str:
    if report.drift_count == 0:
        return "[green]none[/]"
    repaired = f", {report.repaired_count} repaired" if report.repair else " (not repaired)"
    style = "yellow" if report.unrepaired == 0 else "red"
    return f"[{style}]{report.drift_count} figures differ{repaired}[/]"
