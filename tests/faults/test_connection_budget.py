"""The default deployment under load opens no more connections than README's budget says."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

import httpx
from sqlalchemy import text

from core.database import Database
from core.users import NewUser
from harness.stack import Stack
from tests.faults.checks import assert_exact, settle, submit
from tests.support.budget import documented_budget
from tests.support.state import unfinished_jobs

JOBS = [300] * 8
POLLERS = 40
PATHS = ["/api/jobs", "/api/stats", "/api/credits", "/metrics", "/readyz"]
SAMPLE_INTERVAL = 0.02
CONNECTIONS = text(
    "SELECT application_name AS name, count(*) AS n FROM pg_stat_activity "
    "WHERE datname = current_database() AND application_name LIKE 'tally-%' "
    "AND application_name <> 'tally-tests' GROUP BY 1"
)


class PeakConnections:
    """Samples pg_stat_activity in a thread; keeps each application_name's peak and the total's."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-connections", daemon=True)
        self.peaks: Counter[str] = Counter()
        self.total = 0

    def __enter__(self) -> PeakConnections:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with self._db.engine.connect() as connection:
            while not self._stop.wait(SAMPLE_INTERVAL):
                counts = {r.name: int(r.n) for r in connection.execute(CONNECTIONS)}
                connection.rollback()  # a fresh snapshot of pg_stat_activity each time
                for name, count in counts.items():
                    self.peaks[name] = max(self.peaks[name], count)
                self.total = max(self.total, sum(counts.values()))


def poll_until_done(url: str, token: str, ids: list[uuid.UUID], db: Database) -> int:
    """Many clients poll the jobs and read lists, stats and metrics until every job is done.

    Each poller has a client (and a connection) of its own, as separate browsers do.
    """
    done = threading.Event()
    headers = {"Authorization": f"Bearer {token}"}
    paths = [f"/api/job/{job_id}" for job_id in ids] + PATHS

    def poll(n: int) -> int:
        answered = 0
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            while not done.is_set():
                answer = client.get(paths[(n + answered) % len(paths)])
                assert answer.status_code == 200, answer.text
                answered += 1
                if n == 0 and unfinished_jobs(db) == 0:
                    done.set()
        return answered

    with ThreadPoolExecutor(POLLERS) as pool:
        return sum(pool.map(poll, range(POLLERS)))


def test_the_default_deployment_under_load_stays_within_the_connection_budget(
    stack: Stack, db: Database, user: NewUser
) -> None:
    rows, total = documented_budget()
    started = time.monotonic()
    with PeakConnections(db) as seen:
        stack.reconcile()
        stack.reconcile()
        stack.webhooks()
        url = stack.web()
        stack.worker(threads=8, processes=2, TALLY_SANDBOX_LATENCY_MS="20")
        ids = submit(url, user.token, JOBS)
        answered = poll_until_done(url, user.token, ids, db)
        settle(db, started, "connection budget", after="the first process started")
    print(f"\n[connections] peaks {dict(seen.peaks)}, total {seen.total}; {answered} requests")
    assert set(seen.peaks) == set(rows)
    assert {name: n for name, n in seen.peaks.items() if n > rows[name].at_most} == {}
    assert seen.total <= total
    assert_exact(db, all_successful=True)
