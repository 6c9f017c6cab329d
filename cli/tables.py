"""Tables for a terminal: ids whole, times readable, columns that fit the width.

Each table lists its columns in order of importance; the ones that do not fit the
console's width are left out (`--json` prints everything).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich import box
from rich.table import Table

from core.stats import STAT_NAMES

Row = dict[str, Any]
# Space a column takes besides its text: the blanks between neighbours.
GAP = 2


@dataclass(frozen=True)
class Column:
    """One column: its header, its widest text, and how to show a row in it."""

    header: str
    width: int
    cell: Callable[[Row], str]
    right: bool = False


def when(value: str | None) -> str:
    """An ISO time as local `Dec 01 08:44` (with the year when it is not this one)."""
    if not value:
        return "—"
    moment = datetime.fromisoformat(value).astimezone()
    same_year = moment.year == datetime.now().astimezone().year
    return moment.strftime("%b %d %H:%M" if same_year else "%Y %b %d %H:%M")


def number(value: int) -> str:
    """A count with thousands separators."""
    return f"{value:,}"


def fitting(columns: Sequence[Column], width: int) -> list[Column]:
    """The columns, in their order, that fit `width` when taken by importance."""
    chosen: set[int] = set()
    used = 0
    for position, column in enumerate(columns):
        needed = column.width + (GAP if chosen else 0)
        if used + needed > width:
            continue
        chosen.add(position)
        used += needed
    return [c for position, c in enumerate(columns) if position in chosen]


def table(title: str, columns: Sequence[Column], rows: Sequence[Row], width: int) -> Table:
    """A borderless table of the rows, with the columns that fit."""
    shown = fitting(columns, width)
    grid = Table(
        title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0)
    )
    for column in shown:
        grid.add_column(column.header, justify="right" if column.right else "left", no_wrap=True)
    for row in rows:
        grid.add_row(*(column.cell(row) for column in shown))
    return grid


# Most important first: display order is the order given here.
JOB_COLUMNS = (
    Column("id", 36, lambda j: str(j["id"])),
    Column("status", 9, lambda j: str(j["status"])),
    Column("created", 12, lambda j: when(j["created_at"])),
    Column("accounts", 15, lambda j: f"{number(j['successful'])}/{number(j['requested'])}", True),
    Column("failed", 7, lambda j: number(j["failures"]), True),
    Column("progress", 8, lambda j: f"{j['progress']:.0%}", True),
    Column("finished", 12, lambda j: when(j["finished_at"])),
    Column("cancelled", 9, lambda j: number(j.get("cancelled", 0)), True),
)
ACCOUNT_COLUMNS = (
    Column("id", 36, lambda a: str(a["id"])),
    Column("username", 20, lambda a: str(a["username"])),
    Column("created", 12, lambda a: when(a["created_at"])),
    Column("external id", 24, lambda a: str(a["external_id"])),
    Column("provider", 8, lambda a: str(a["provider"])),
    Column("job", 36, lambda a: str(a["job_id"])),
)


def jobs_table(jobs: Sequence[Row], title: str, width: int) -> Table:
    """Jobs with their counters."""
    return table(title, JOB_COLUMNS, jobs, width)


def accounts_table(accounts: Sequence[Row], title: str, width: int) -> Table:
    """Vault accounts, never their secrets."""
    return table(title, ACCOUNT_COLUMNS, accounts, width)


def stats_table(stats: Row, credits: Row) -> Table:
    """The stats card and balance as a two-column table."""
    grid = Table(title="Stats", show_header=False)
    grid.add_column("figure")
    grid.add_column("value", justify="right")
    for name in STAT_NAMES:
        grid.add_row(name, number(stats[name]))
    grid.add_row("credits", number(credits["balance"]))
    return grid


def page_title(name: str, page: Row) -> str:
    """`Jobs: 20 of 53`, or `Jobs: none` for an empty list."""
    if not page["items"]:
        return f"{name}: none" if page["total"] == 0 else f"{name}: none further"
    return f"{name}: {len(page['items'])} of {page['total']}"
