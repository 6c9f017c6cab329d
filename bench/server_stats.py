"""What a service cost the database: statements it sent, transactions and rows read.

Statements are counted inside the service's processes by bench/instrument (SQLAlchemy's
cursor events); transactions and rows read come from PostgreSQL's cumulative statistics
of the run's database, read before and after (a backend's figures are flushed when it
exits, so the service is stopped before the second read).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from bench.context import Bench
from core.migrate import PROJECT_ROOT

INSTRUMENT = Path(__file__).resolve().parent / "instrument"
FLUSH_SECONDS = 1.0  # PostgreSQL publishes a backend's last figures shortly after it exits


@dataclass(frozen=True)
class ServerCounts:
    """Cumulative figures of the run's database at one moment."""

    transactions: int
    rows_read: int
    scans: int

    def __sub__(self, other: ServerCounts) -> ServerCounts:
        return ServerCounts(
            self.transactions - other.transactions,
            self.rows_read - other.rows_read,
            self.scans - other.scans,
        )


def server_counts(bench: Bench) -> ServerCounts:
    """Committed transactions, rows read and table scans of the run's database so far."""
    time.sleep(FLUSH_SECONDS)
    with bench.database.engine.connect() as connection:
        connection.execute(text("SELECT pg_stat_clear_snapshot()"))
        row = connection.execute(
            text(
                "SELECT (SELECT xact_commit FROM pg_stat_database "
                "        WHERE datname = current_database()) AS transactions, "
                "coalesce(sum(coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)), 0) "
                "  AS rows_read, "
                "coalesce(sum(coalesce(seq_scan, 0) + coalesce(idx_scan, 0)), 0) AS scans "
                "FROM pg_stat_user_tables"
            )
        ).one()
    return ServerCounts(int(row.transactions), int(row.rows_read), int(row.scans))


class StatementCounter:
    """A folder where instrumented service processes write how many statements they sent."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        """Environment entries that make a service process count into this folder."""
        path = os.pathsep.join([str(INSTRUMENT), str(PROJECT_ROOT)])
        return {"BENCH_STATEMENTS_DIR": str(self.folder), "PYTHONPATH": path}

    def total(self) -> int:
        """Statements every counted process sent (read after the processes stopped)."""
        return sum(int(p.read_text() or 0) for p in self.folder.glob("*.count"))
