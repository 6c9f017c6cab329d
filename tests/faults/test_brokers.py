"""The same processes on Redis and on RabbitMQ: a whole run, and a broker losing its queues."""

from __future__ import annotations

import time

import httpx

from core.database import Database
from core.users import NewUser
from tests.faults.checks import assert_exact, settle, slice_states, submit
from tests.support.brokers import BrokerServer
from tests.support.stack import Stack
from tests.support.waiting import wait_for

JOBS = 12
ITEMS = 150
LATENCY = {"TALLY_SANDBOX_LATENCY_MS": "50"}


def test_jobs_run_end_to_end_on_each_broker(
    broker_stack: Stack, any_broker: BrokerServer, db: Database, user: NewUser
) -> None:
    broker_stack.reconcile()
    url = broker_stack.web()
    worker = broker_stack.worker(threads=4, processes=2, **LATENCY)
    ids = submit(url, user.token, [ITEMS] * JOBS)
    headers = {"Authorization": f"Bearer {user.token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=40) as client:
        answer = client.get(f"/api/job/{ids[-1]}?wait=30")
        assert answer.status_code == 200, answer.text
        settle(db, time.monotonic(), f"no fault, on {any_broker.kind}", after="the submits")
        stats = client.get("/api/stats").json()
    assert stats["requested"] == stats["successful"] == JOBS * ITEMS
    wait_for(lambda: any_broker.waiting() == 0, timeout=30)  # every message acknowledged
    assert_exact(db, all_successful=True)
    assert f"broker: {any_broker.kind} at" in worker.log_text()


def test_a_broker_losing_its_queues_twice_loses_no_job(
    broker_stack: Stack, any_broker: BrokerServer, db: Database, user: NewUser
) -> None:
    broker_stack.reconcile()
    url = broker_stack.web()
    broker_stack.worker(threads=4, **LATENCY)
    submit(url, user.token, [ITEMS] * JOBS)
    for loss in range(2):
        wait_for(lambda n=loss: slice_states(db).get("done", 0) >= 4 + 8 * n, timeout=60)
        waiting = any_broker.waiting()
        any_broker.lose_queues()
        print(f"\n[{any_broker.kind}] queues lost with {waiting} messages waiting")
    settle(db, time.monotonic(), f"{any_broker.kind} lost its queues twice")
    assert_exact(db, all_successful=True)
