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


# Adjacent string literals of one statement, split over lines, read as one.
LITERAL_BREAK = re.compile(r'"\s*\n\s*f?"')
JOB_WRITE = re.compile(r"UPDATE\s+(?:jobs|job_slices)\b(.*?)\bWHERE", re.DOTALL)
MOVES = re.compile(
    r"\bstatus\s*=|\bslices_done\s*=|\bsuccessful\s*=|\bfailures\s*=|\bcancelled\s*="
)


def test_only_the_transitions_module_changes_a_job_or_slice_status_or_count() -> None:
    writers = {
        str(p.relative_to(PROJECT_ROOT))
        for folder in ("core", "worker", "outbox", "web", "reconcile", "cli", "webhooks")
        for p in sources(folder)
        for statement in JOB_WRITE.findall(LITERAL_BREAK.sub("", p.read_text()))
        if MOVES.search(statement)
    }
    assert writers == {"core/transitions.py"}


def test_the_boundary_check_sees_a_status_written_elsewhere() -> None:
    hidden = 'text(\n    "UPDATE job_slices SET lease_expires_at = NULL, "\n'
    hidden += "    \"status = 'done' WHERE x\"\n)"
    statements = JOB_WRITE.findall(LITERAL_BREAK.sub("", hidden))
    assert statements and MOVES.search(statements[0])
