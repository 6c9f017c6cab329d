"""GET /metrics: Prometheus text, read from the database at scrape time.

Figures the database knows (jobs by status, items created and failed, live vault rows,
outbox backlog and age, how long recent outbox rows waited to be applied) are read by one
collector per scrape, so they are right whichever process did the work; none of its
statements scans jobs or the vault, so a scrape costs the same at any table size.
Measurements taken inside the worker and the reconcile daemon (provider latency, apply
batch size and duration; see core/metrics.py) are included when PROMETHEUS_MULTIPROC_DIR
is set for the processes of this host; otherwise each process keeps them to itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response

from core.database import SessionFactory
from core.vocabulary import UNFINISHED_SQL, JobStatus
from outbox.backlog import BACKLOG
from web.auth.scrape_token import probe_access
from web.daemon_metrics import DaemonCollector
from web.live.hub import LiveJobs

LAG_SAMPLE_ROWS = 1000
Counts = dict[str, float]
TERMINAL = tuple(status for status in JobStatus if status.terminal)

# One round trip that scans neither jobs nor the vault. Unfinished jobs are counted through
# their partial index; the rest come from PostgreSQL's own statistics: live rows per table
# (pg_stat_get_live_tuples, kept by every commit), the share of each status among jobs and
# of soft-deleted vault rows (pg_stats, from ANALYZE). Items are summed over user_stats
# (one row per user) and the outbox figures are outbox/backlog.py's partial-index statement.
SNAPSHOT = text(
    f"""
    SELECT
      (SELECT coalesce(json_object_agg(status, n), '{{}}')
         FROM (SELECT status, count(*) AS n FROM jobs
               WHERE status IN {UNFINISHED_SQL} GROUP BY status) s) AS unfinished,
      (SELECT coalesce(json_object_agg(m.status, m.share), '{{}}')
         FROM pg_stats,
              unnest(most_common_vals::text::text[], most_common_freqs) AS m(status, share)
        WHERE schemaname = current_schema() AND tablename = 'jobs'
          AND attname = 'status') AS shares,
      pg_stat_get_live_tuples('jobs'::regclass) AS jobs,
      pg_stat_get_live_tuples('user_accounts'::regclass) AS vault_rows,
      (SELECT null_frac FROM pg_stats
        WHERE schemaname = current_schema() AND tablename = 'user_accounts'
          AND attname = 'deleted_at') AS live_share,
      (SELECT coalesce(sum(successful), 0) FROM user_stats) AS created,
      (SELECT coalesce(sum(failures), 0) FROM user_stats) AS failed,
      backlog.rows AS backlog,
      backlog.oldest AS oldest,
      backlog.quarantined AS quarantined
    FROM ({BACKLOG.text}) AS backlog
    """
)
# Over the newest outbox rows (a primary-key range, not a scan): seconds from commit to apply.
APPLY_LAG = text(
    """
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag) AS p50,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY lag) AS p99,
           max(lag) AS max, count(lag) AS n
    FROM (SELECT extract(epoch FROM applied_at - created_at) AS lag
          FROM (SELECT applied_at, created_at FROM outbox ORDER BY id DESC LIMIT :n) newest
          WHERE applied_at IS NOT NULL) lags
    """
)


class DatabaseCollector(Collector):
    """Reads the service's state from PostgreSQL on every scrape."""

    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    def collect(self) -> Iterator[Any]:
        """Yield every metric family computed from the database."""
        with self._sessions() as session, session.begin():
            row = session.execute(SNAPSHOT).one()
            lag = session.execute(APPLY_LAG, {"n": LAG_SAMPLE_ROWS}).one()
        yield _jobs_family(job_counts(row.unfinished, row.shares, row.jobs))
        yield CounterMetricFamily(
            "tally_items_created",
            "Accounts created by the jobs whose stats are applied.",
            value=int(row.created),
        )
        yield CounterMetricFamily(
            "tally_items_failed",
            "Items that failed in the jobs whose stats are applied.",
            value=int(row.failed),
        )
        yield _gauge("tally_outbox_backlog", "Outbox rows not applied yet.", row.backlog)
        yield _gauge(
            "tally_outbox_oldest_pending_seconds", "Age of the oldest unapplied row.", row.oldest
        )
        yield _gauge(
            "tally_outbox_quarantined",
            "Outbox rows the apply set aside (they wait for `tally outbox retry`).",
            row.quarantined,
        )
        yield _gauge(
            "tally_vault_accounts",
            "Live accounts in every vault (from PostgreSQL's table statistics).",
            vault_estimate(row.vault_rows, row.live_share),
        )
        yield from _lag_gauges(lag)


def _gauge(name: str, documentation: str, value: Any) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value or 0))


def job_counts(unfinished: dict[str, int], shares: dict[str, float], total: float) -> Counts:
    """Exact unfinished counts; the other jobs split by the planner's share of each status."""
    counts: Counts = {status: float(n) for status, n in unfinished.items()}
    finished = max(0.0, total - sum(counts.values()))
    known = sum(shares.get(status, 0.0) for status in TERMINAL)
    if not known:  # no statistics yet: count every finished job as completed
        shares, known = {JobStatus.COMPLETED: 1.0}, 1.0
    for status in TERMINAL:
        counts[status] = round(finished * shares.get(status, 0.0) / known)
    return counts


def vault_estimate(rows: float, live_share: float | None) -> float:
    """Live vault rows: every row, less the share ANALYZE saw soft-deleted."""
    return rows * (1.0 if live_share is None else live_share)


def _jobs_family(counts: Counts) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "tally_jobs",
        "Jobs by status (exact while unfinished, else from PostgreSQL's statistics).",
        labels=["status"],
    )
    for status in sorted(set(JobStatus) | set(counts)):
        family.add_metric([status], float(counts.get(status, 0)))
    return family


def _lag_gauges(lag: Any) -> Iterator[GaugeMetricFamily]:
    window = f"over the newest {LAG_SAMPLE_ROWS} outbox rows"
    for name, value in (("p50", lag.p50), ("p99", lag.p99), ("max", lag.max)):
        yield _gauge(
            f"tally_stats_apply_lag_{name}_seconds",
            f"Seconds from a job's finish to its stats being applied, {name} {window}.",
            value,
        )


class LiveCollector(Collector):
    """This web process's live fan-out: watched jobs, waiting requests, listener state."""

    def __init__(self, live: LiveJobs) -> None:
        self._live = live

    def collect(self) -> Iterator[Any]:
        """Yield the fan-out's gauges."""
        hub = self._live.hub
        yield _gauge("tally_live_watched_jobs", "Jobs watched by long-polls or SSE.", hub.watched)
        yield _gauge("tally_live_waiters", "Requests waiting on a job change.", hub.watchers)
        yield _gauge(
            "tally_live_listener_connected",
            "1 while the LISTEN connection is up.",
            int(self._live.listener.connected),
        )


def build_registry(sessions: SessionFactory, live: LiveJobs) -> CollectorRegistry:
    """A registry with the database collector and, when configured, other processes' metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(sessions))
    registry.register(LiveCollector(live))
    registry.register(DaemonCollector(sessions))
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def metrics(request: Request) -> Response:
    """GET /metrics: the Prometheus exposition text (the scrape token, outside development)."""
    probe_access(request)
    registry: CollectorRegistry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
