"""The same processes on Redis and on RabbitMQ: a whole run, and a broker losing its queues."""

from __future__ import annotations

import time

import httpx

from core.database import Database
from core.users import NewUser
from harness.stack import RedisServer, Stack
from harness.waiting import wait_for
from tests.faults.checks import assert_exact, settle, slice_states, submit
from tests.faults.conftest import StackFactory
from tests.support.brokers import BrokerServer
from tests.support.rabbitmq import RabbitVhost
from tests.support.reference import ReferenceServer

JOBS = 12
ITEMS = 150
LATENCY = {"TALLY_SANDBOX_LATENCY_MS": "50"}
LOST_JOBS = 30


def test_jobs_run_end_to_end_on_each_broker(
    broker_stack: Stack, any_broker: BrokerServer, db: Database, user: NewUser
) -> None:
    broker_stack.reconcile()
    url = broker_stack.web()
    worker = broker_stack.worker(threads=4, processes=2, env=LATENCY)
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


def test_a_broker_losing_its_queues_again_and_again_loses_no_job(
    broker_stack: Stack, any_broker: BrokerServer, db: Database, user: NewUser
) -> None:
    broker_stack.reconcile()
    url = broker_stack.web()
    submit(url, user.token, [ITEMS] * LOST_JOBS)
    # With no worker yet, every message waits: each loss takes them all, twice (the second
    # time the turns the sweep sent once turns stalled), then once more while a worker runs.
    for loss in range(2):
        wait_for(lambda: any_broker.ready() > 0, timeout=60)
        lost = any_broker.lose_queues()
        print(f"\n[{any_broker.kind}] loss {loss + 1}: {lost} messages waiting")
        assert lost > 0
    broker_stack.worker(threads=2, env=LATENCY)
    wait_for(lambda: slice_states(db).get("done", 0) >= 8, timeout=60)
    lost = any_broker.lose_queues()
    print(f"[{any_broker.kind}] loss 3, mid-run: {lost} messages waiting")
    settle(db, time.monotonic(), f"{any_broker.kind} lost its queues three times")
    assert_exact(db, all_successful=True)


def test_on_rabbitmq_the_rate_limit_holds_across_worker_processes_through_redis(
    stacks: StackFactory,
    fault_env: dict[str, str],
    rabbit_vhost: RabbitVhost,
    redis_server: RedisServer,
    db: Database,
    user: NewUser,
) -> None:
    """RabbitMQ carries the messages; Redis holds only the provider's shared pacing."""
    rabbit_vhost.purge()
    env = {**fault_env, "RABBITMQ_URL": rabbit_vhost.url, "REDIS_URL": redis_server.url}
    stack = stacks(env)
    provider = ReferenceServer(stack, "--rate-limit", "100", "--seed", "5")
    paced = provider.env(
        TALLY_PROVIDER_RATE_LIMIT="90", TALLY_PROVIDER_TIMEOUT="2", TALLY_SLICE_WAIT_SECONDS="5"
    )
    stack.reconcile(env=paced)
    url = stack.web(env=paced)
    worker = stack.worker(threads=4, processes=2, env=paced)
    submit(url, user.token, [150, 150, 150])
    settle(db, time.monotonic(), "rate limit on RabbitMQ", after="the submit")
    counts = provider.counts()
    shown = {k: v for k, v in counts.items() if k != "accounts_by_key"}
    print(f"\n[rabbitmq pacing] provider counts: {shown}")
    assert "broker: rabbitmq at" in worker.log_text()
    assert_exact(db, all_successful=True)
    assert counts["accounts"] == 450
    assert counts["max_requests_in_one_second"] <= 90 * 1.1  # each process alone: up to 2x


def test_rabbitmq_with_the_http_provider_and_no_redis_refuses_to_start(
    stacks: StackFactory, fault_env: dict[str, str], rabbit_vhost: RabbitVhost
) -> None:
    env = {**fault_env, "RABBITMQ_URL": rabbit_vhost.url, "REDIS_URL": ""}
    env |= {"TALLY_PROVIDER": "http", "TALLY_PROVIDER_URL": "http://127.0.0.1:9/accounts"}
    stack = stacks(env)
    worker = stack.worker(threads=1)
    wait_for(lambda: not worker.running, timeout=30)
    assert worker.popen.returncode != 0
    assert "tally worker: REDIS_URL is not set: the http provider's pacing" in worker.log_text()
