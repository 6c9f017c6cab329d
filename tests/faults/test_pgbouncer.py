"""The Procfile's processes behind PgBouncer in transaction mode, with and without faults."""

from __future__ import annotations

import functools
import time

import httpx
import pytest
from sqlalchemy import text

from core.database import Database
from core.settings import Settings
from core.users import NewUser
from harness.stack import WORKER_READY
from harness.waiting import wait_for
from tests.faults.checks import assert_exact, settle, slice_states, submit
from tests.faults.conftest import StackFactory
from tests.faults.test_postgres_cut import cut_connections
from tests.support.pgbouncer import PgBouncer

JOBS = 10
ITEMS = 200
LATENCY = {"TALLY_SANDBOX_LATENCY_MS": "50"}


@pytest.fixture
def pooled_env(
    fault_env: dict[str, str], pgbouncer: PgBouncer, settings: Settings
) -> dict[str, str]:
    """Every process pooled by PgBouncer; LISTEN and migrations on the direct URL."""
    return {
        **fault_env,
        "DATABASE_URL": pgbouncer.url(settings.database_url),
        "DATABASE_DIRECT_URL": settings.database_url,
        "TALLY_DATABASE_POOLING": "transaction",
    }


def listeners(db: Database) -> dict[str, int]:
    """LISTEN connections held on the server itself, by application name."""
    with db.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT application_name, count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN%' "
                "GROUP BY application_name"
            )
        )
        return {name: int(count) for name, count in rows}


def test_jobs_run_exactly_through_pgbouncer_in_transaction_mode(
    stacks: StackFactory, pooled_env: dict[str, str], db: Database, user: NewUser
) -> None:
    stack = stacks(pooled_env)
    stack.reconcile()
    stack.reconcile()
    url = stack.web()
    stack.worker(threads=4, processes=2, env=LATENCY)
    ids = submit(url, user.token, [ITEMS] * JOBS)
    headers = {"Authorization": f"Bearer {user.token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=40) as client:
        # A long-poll is woken by the workers' NOTIFY through the web's direct LISTEN.
        first = client.get(f"/api/job/{ids[0]}")
        answer = client.get(
            f"/api/job/{ids[0]}?wait=30", headers={"If-None-Match": first.headers["ETag"]}
        )
        assert answer.status_code == 200, answer.text
        settle(db, time.monotonic(), "no fault, through PgBouncer", after="the submits")
        stats = client.get("/api/stats").json()
    assert stats["requested"] == stats["successful"] == JOBS * ITEMS
    assert listeners(db).get("tally-web-listener") == 1
    assert_exact(db, all_successful=True)
    for child in stack.children:
        assert "unsupported startup parameter" not in child.log_text()


def test_workers_killed_and_server_connections_cut_behind_pgbouncer_lose_nothing(
    stacks: StackFactory, pooled_env: dict[str, str], db: Database, user: NewUser
) -> None:
    stack = stacks(pooled_env)
    stack.reconcile()
    url = stack.web()
    worker = stack.worker(threads=4, env=LATENCY)
    submit(url, user.token, [ITEMS] * JOBS)
    for kill in range(2):
        worker.wait_for_log(WORKER_READY, timeout=60)
        wait_for(functools.partial(slices_done, db, 2 + 4 * kill), timeout=60)
        worker.kill()
        worker = stack.worker(threads=4, env=LATENCY)
    cuts = []
    for _ in range(10):
        cuts.append(cut_connections(db)[0])
        time.sleep(0.1)
    print(f"\n[pgbouncer] server connections cut: {cuts}")
    settle(db, time.monotonic(), "workers killed and connections cut behind PgBouncer")
    assert sum(cuts) > 0
    assert_exact(db, all_successful=True)


def slices_done(db: Database, at_least: int) -> bool:
    """Whether at least that many slices are done."""
    return slice_states(db).get("done", 0) >= at_least
