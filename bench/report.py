"""Rows of figures beside their same-run references: ratios, targets, the table and the JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True)
class Target:
    """What a row should reach: a bound on its ratio to the reference, or on the figure."""

    of: Literal["ratio", "figure"]
    op: Literal[">=", "<="]
    value: float
    unit: str = ""

    def met(self, figure: float, ratio: float | None) -> bool | None:
        """Whether the bound holds; None when the ratio it needs is unknown."""
        measured = ratio if self.of == "ratio" else figure
        if measured is None or math.isnan(measured):
            return None
        return measured >= self.value if self.op == ">=" else measured <= self.value

    @property
    def text(self) -> str:
        """The target as a reader writes it."""
        sign = "≥" if self.op == ">=" else "≤"
        if self.of == "figure":
            return f"{sign} {_number(self.value)} {self.unit}".strip()
        if self.value < 1:
            return f"{sign} {self.value:.0%} of ref"
        return f"{sign} {_number(self.value)}x ref"


@dataclass(frozen=True)
class Row:
    """One measured figure, its same-run reference and the target between them."""

    name: str
    figure: float
    unit: str
    reference: float | None = None
    reference_name: str = ""
    target: Target | None = None
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """Figure divided by reference, when there is a reference."""
        if self.reference is None or self.reference == 0:
            return None
        return self.figure / self.reference

    @property
    def met(self) -> bool | None:
        """Whether the target holds (None without a target)."""
        return None if self.target is None else self.target.met(self.figure, self.ratio)

    def as_json(self) -> dict[str, Any]:
        """The row with its derived fields, for the results file."""
        data = asdict(self)
        data["target"] = None if self.target is None else self.target.text
        data.update(ratio=self.ratio, met=self.met)
        return data


def percentile(values: Sequence[float], share: float) -> float:
    """The `share` quantile (0..1) of the values, interpolated between neighbours."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = share * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _number(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _cells(row: Row) -> list[str]:
    ratio = row.ratio
    reference = "—" if row.reference is None else f"{_number(row.reference)} ({row.reference_name})"
    met = {None: "—", True: "yes", False: "NO"}[row.met]
    return [
        row.name,
        f"{_number(row.figure)} {row.unit}",
        reference,
        "—" if ratio is None else f"{ratio:.2f}",
        "—" if row.target is None else row.target.text,
        met,
    ]


HEADER = ["benchmark", "figure", "same-run reference", "ratio", "target", "met?"]


def table(rows: Sequence[Row]) -> str:
    """The rows as an aligned plain-text table."""
    lines = [HEADER, *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    rendered = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    rendered.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in rendered)


def write_json(path: Path, meta: dict[str, Any], rows: Sequence[Row]) -> None:
    """Write one run's rows and context to a JSON file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {**meta, "rows": [r.as_json() for r in rows]}
    path.write_text(json.dumps(body, indent=2, default=str) + "\n")
