"""The rules between folders that imports alone cannot show."""

from __future__ import annotations

import re
from pathlib import Path

from core.migrate import PROJECT_ROOT

STATS_TABLE = re.compile(r"\buser_stats\b|\bUserStats\b")


def sources(folder: str) -> list[Path]:
    return sorted((PROJECT_ROOT / folder).rglob("*.py"))


def test_the_worker_never_names_user_stats() -> None:
    offenders = [p.name for p in sources("worker") if STATS_TABLE.search(p.read_text())]
    assert sources("worker") and offenders == []


def test_only_the_outbox_applier_and_reconcile_write_user_stats() -> None:
    writes = re.compile(r"(INSERT INTO|UPDATE)\s+user_stats\b")
    writers = {
        str(p.relative_to(PROJECT_ROOT))
        for folder in ("core", "worker", "outbox", "web", "reconcile", "cli")
        for p in sources(folder)
        if writes.search(p.read_text())
    }
    assert writers == {"outbox/apply.py", "reconcile/recompute.py", "reconcile/repair.py"}
