"""GET /metrics, continued: whether the reconcile daemons run, and the stalest unfinished job.

What an alert needs to wake someone and a dashboard can't show from the other figures:
`tally_reconcile_leader` (1 while a daemon holds an unexpired leader lease),
`tally_reconcile_heartbeat_age_seconds` (since the newest daemon heartbeat) and
`tally_jobs_stalest_unfinished_seconds` (since the least recently changed queued or running
job changed, one probe of a partial index). One round trip; no statement scans a table
that grows with jobs or accounts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text

from core.database import SessionFactory
from core.vocabulary import UNFINISHED_SQL

# With no row to measure, an age reads as this (a day): an absent daemon is old, not new.
NEVER_SECONDS = 86_400.0

DAEMONS = text(
    f"""
    SELECT
      (SELECT count(*) FROM reconcile_leader WHERE expires_at > now()) AS leaders,
      (SELECT extract(epoch FROM now() - max(last_seen)) FROM reconcile_heartbeats) AS beat,
      (SELECT extract(epoch FROM now() - min(updated_at)) FROM jobs
        WHERE status IN {UNFINISHED_SQL}) AS stalest
    """
)


class DaemonCollector(Collector):
    """Reads the reconcile daemons' lease and heartbeats, and the stalest job, per scrape."""

    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    def collect(self) -> Iterator[Any]:
        """Yield the gauges an operator's alerts watch."""
        with self._sessions() as session, session.begin():
            row = session.execute(DAEMONS).one()
        yield GaugeMetricFamily(
            "tally_reconcile_leader",
            "1 while a reconcile daemon holds an unexpired leader lease, else 0.",
            value=float(min(1, row.leaders)),
        )
        yield GaugeMetricFamily(
            "tally_reconcile_heartbeat_age_seconds",
            "Seconds since the newest reconcile daemon heartbeat (a day when there is none).",
            value=NEVER_SECONDS if row.beat is None else float(row.beat),
        )
        yield GaugeMetricFamily(
            "tally_jobs_stalest_unfinished_seconds",
            "Seconds since the least recently changed queued or running job changed (0: none).",
            value=0.0 if row.stalest is None else float(row.stalest),
        )
