"""The connection budget README documents: at most how many connections each process opens."""

from __future__ import annotations

from dataclasses import dataclass

from core.migrate import PROJECT_ROOT

SECTION = "## Connection budget"


@dataclass(frozen=True)
class BudgetRow:
    """One row of the table: the processes with one application_name."""

    application_name: str
    per_process: int
    processes: int
    at_most: int


def documented_budget() -> tuple[dict[str, BudgetRow], int]:
    """The rows of README's budget table by application_name, and its total."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme[readme.index(SECTION) :].split("\n## ")[0]
    rows: dict[str, BudgetRow] = {}
    total = 0
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) < 5 or not cells[4].isdigit():
            continue
        if cells[0] == "total":
            total = int(cells[4])
        else:
            name = cells[1].strip("`")
            rows[name] = BudgetRow(name, int(cells[2]), int(cells[3]), int(cells[4]))
    return rows, total
