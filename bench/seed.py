"""Users, jobs and waiting: what the pipeline benchmarks do through the product's own paths."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text

from bench.context import Bench
from core.broker import make_broker
from core.jobs import JobRequest, submit
from core.settings import Settings
from core.turn_messages import send_turns


def create_users(bench: Bench, count: int, credits: int) -> list[uuid.UUID]:
    """Create `count` users, each granted `credits` (balance and ledger agree), in SQL."""
    with bench.database.engine.begin() as connection:
        rows = connection.execute(
            text(
                "WITH made AS (INSERT INTO users (name) "
                "  SELECT 'bench-' || n FROM generate_series(1, :count) AS n RETURNING id), "
                "funded AS (INSERT INTO user_credits (user_id, balance) "
                "  SELECT id, :credits FROM made RETURNING user_id), "
                "granted AS (INSERT INTO credit_ledger (user_id, kind, amount, note) "
                "  SELECT user_id, 'grant', :credits, 'bench' FROM funded) "
                "SELECT id FROM made ORDER BY id"
            ),
            {"count": count, "credits": credits},
        )
        return [r.id for r in rows]


def submit_jobs(
    bench: Bench,
    settings: Settings,
    owners: Sequence[uuid.UUID],
    counts: Sequence[int],
    provider: str = "sandbox",
) -> list[uuid.UUID]:
    """Submit one job per (owner, count) and send its turns, as the web process does."""
    broker = make_broker(settings)
    ids = []
    try:
        for owner, count in zip(owners, counts, strict=True):
            request = JobRequest(owner, count, provider)
            submission = submit(bench.database.sessions, settings, request)
            send_turns(broker, submission.turns)
            ids.append(submission.job.id)
    finally:
        broker.close()
    return ids


def bare_jobs(
    bench: Bench, owners: Sequence[uuid.UUID], counts: Sequence[int], status: str = "completed"
) -> list[tuple[uuid.UUID, uuid.UUID, int]]:
    """Insert job rows directly (finished by default); return (owner, job, size) for each."""
    with bench.database.engine.begin() as connection:
        rows = connection.execute(
            text(
                "INSERT INTO jobs (user_id, status, provider, requested, price, slices_total, "
                "finished_at) SELECT owner, CAST(:status AS text), 'sandbox', n, 1, 1, "
                "CASE WHEN :status IN ('completed', 'failed') THEN now() END "
                "FROM unnest(CAST(:owners AS uuid[]), CAST(:counts AS int[])) AS t(owner, n) "
                "RETURNING user_id, id, requested"
            ),
            {"owners": [str(o) for o in owners], "counts": list(counts), "status": status},
        )
        return [(r.user_id, r.id, r.requested) for r in rows]


@dataclass(frozen=True)
class JobsOutcome:
    """How a set of jobs ended, timed by the database clock from first submit to last finish."""

    seconds: float
    jobs: int
    completed: int
    requested: int
    successful: int
    failures: int

    @property
    def items_per_second(self) -> float:
        """Items with an outcome per second of wall time."""
        return (self.successful + self.failures) / self.seconds if self.seconds else 0.0


def wait_finished(
    bench: Bench, job_ids: Sequence[uuid.UUID], timeout: float, interval: float = 0.05
) -> JobsOutcome:
    """Wait until every job is terminal (or the timeout passes) and return how they ended."""
    deadline = time.monotonic() + timeout
    while unfinished(bench, job_ids) and time.monotonic() < deadline:
        time.sleep(interval)
    return outcome(bench, job_ids)


def wait_finished_quietly(
    bench: Bench, job_ids: Sequence[uuid.UUID], timeout: float, interval: float = 0.05
) -> JobsOutcome:
    """`wait_finished` on a fresh database without reading a table while the jobs run.

    Each finished job writes one outbox row, so the outbox's id sequence tells how many have
    finished; the jobs themselves are read once it says all may have. The service's rows
    read are then its own, not this wait's.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if finished_so_far(bench) >= len(job_ids) and not unfinished(bench, job_ids):
            break
        time.sleep(interval)
    return outcome(bench, job_ids)


def finished_so_far(bench: Bench) -> int:
    """Jobs finished since the database was created (the outbox's id sequence, no table read)."""
    query = text("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM outbox_id_seq")
    with bench.database.engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def outcome(bench: Bench, job_ids: Sequence[uuid.UUID]) -> JobsOutcome:
    """The figures of a set of jobs as they stand now."""
    with bench.database.engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT extract(epoch FROM max(finished_at) - min(created_at)) AS seconds, "
                "count(*) AS jobs, count(*) FILTER (WHERE status = 'completed') AS completed, "
                "sum(requested) AS requested, sum(successful) AS successful, "
                "sum(failures) AS failures FROM jobs WHERE id = ANY(:ids)"
            ),
            {"ids": list(job_ids)},
        ).one()
    return JobsOutcome(
        seconds=float(row.seconds or 0.0),
        jobs=int(row.jobs),
        completed=int(row.completed),
        requested=int(row.requested or 0),
        successful=int(row.successful or 0),
        failures=int(row.failures or 0),
    )


def unfinished(bench: Bench, job_ids: Sequence[uuid.UUID]) -> int:
    """How many of these jobs are not terminal yet."""
    with bench.database.engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM jobs WHERE id = ANY(:ids) "
                    "AND status IN ('queued', 'running')"
                ),
                {"ids": list(job_ids)},
            ).scalar_one()
        )


def backend_pids(bench: Bench, application_name: str) -> list[int]:
    """Process ids of the PostgreSQL backends serving one application on the run's database."""
    with bench.database.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = :name"
            ),
            {"name": application_name},
        )
        return [int(r.pid) for r in rows]


def warm_up(
    bench: Bench, settings: Settings, owner: uuid.UUID, jobs: int = 1, provider: str = "sandbox"
) -> JobsOutcome:
    """Run one-item jobs through a freshly started worker before anything is timed.

    An idle Dramatiq consumer polls Redis with a backoff of up to a second, and the first
    slice of a process opens its connections and fills its caches.
    """
    ids = submit_jobs(bench, settings, [owner] * jobs, [1] * jobs, provider)
    return wait_finished(bench, ids, 60)


def drain_rate(bench: Bench, job_ids: Sequence[uuid.UUID]) -> float:
    """Accounts with an outcome per second, from the first slice claimed to the last finish.

    A worker started after the jobs were queued is timed from its first claim (the first
    job's `started_at`), not from the submits, by the database clock.
    """
    with bench.database.engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT extract(epoch FROM max(finished_at) - min(started_at)) AS seconds, "
                "sum(successful + failures) AS items FROM jobs WHERE id = ANY(:ids)"
            ),
            {"ids": list(job_ids)},
        ).one()
    seconds = float(row.seconds or 0.0)
    return float(row.items or 0) / seconds if seconds else 0.0


def slices_of(bench: Bench, job_ids: Sequence[uuid.UUID]) -> int:
    """How many slices these jobs were cut into."""
    with bench.database.engine.connect() as connection:
        query = text("SELECT coalesce(sum(slices_total), 0) FROM jobs WHERE id = ANY(:ids)")
        return int(connection.execute(query, {"ids": list(job_ids)}).scalar_one())


def job_seconds(bench: Bench, job_ids: Sequence[uuid.UUID]) -> list[float]:
    """Each job's created_at → finished_at, by the database clock, in submit order."""
    query = text(
        "SELECT extract(epoch FROM finished_at - created_at) AS seconds FROM jobs "
        "WHERE id = ANY(:ids) ORDER BY created_at"
    )
    with bench.database.engine.connect() as connection:
        rows = connection.execute(query, {"ids": list(job_ids)})
        return [float(r.seconds) if r.seconds is not None else float("nan") for r in rows]
