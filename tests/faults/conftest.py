"""Fixtures of the fault suite: a private Redis, tally's processes as subprocesses, a user.

Every test here runs the Procfile's processes for real (the `dramatiq` CLI worker,
`python -m reconcile`, uvicorn) against the test database and a Redis of its own, so
that killing, flushing or restarting them touches nothing outside the test.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from core.database import Database
from core.users import NewUser, create_user
from harness.stack import RedisServer, Stack
from tests.support import rabbitmq
from tests.support.brokers import BrokerServer, RabbitBrokerServer, RedisBrokerServer
from tests.support.rabbitmq import RabbitVhost

# Short intervals so each fault heals within seconds (production: see Settings.from_env).
FAULT_ENV = {
    "TALLY_LEASE_SECONDS": "2",
    "TALLY_HEARTBEAT_INTERVAL": "0.5",
    "TALLY_SWEEP_INTERVAL": "0.5",
    "TALLY_STALE_ENQUEUE_SECONDS": "2",
    "TALLY_APPLY_INTERVAL": "0.2",
    "TALLY_RECOMPUTE_INTERVAL": "1",
    "TALLY_LEADER_RETRY_SECONDS": "0.5",
    "TALLY_LEADER_LEASE_SECONDS": "2",
    "TALLY_SLICE_SIZE": "50",
    "TALLY_PROVIDER_CONCURRENCY": "40",
    "TALLY_SLICE_MAX_ATTEMPTS": "100",
    "PYTHONUNBUFFERED": "1",
    "dramatiq_restart_delay": "500",
}

StackFactory = Callable[[dict[str, str]], Stack]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test item, so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis server of this module's own: tests may flush, kill and restart it."""
    server = RedisServer(tmp_path_factory.mktemp("faults-redis"))
    server.start()
    try:
        yield server
    finally:
        server.crash()


@pytest.fixture
def redis_server(private_redis: RedisServer) -> RedisServer:
    """The module's Redis, running and empty."""
    if private_redis.child is None:
        private_redis.start()
    private_redis.flushall()
    return private_redis


@pytest.fixture
def fault_env(process_env: dict[str, str], redis_server: RedisServer) -> dict[str, str]:
    """The environment of every process in a fault test."""
    return {**process_env, **FAULT_ENV, "REDIS_URL": redis_server.url}


@pytest.fixture(scope="module")
def rabbit_vhost() -> Iterator[RabbitVhost]:
    """A RabbitMQ virtual host of this module's own on the machine's server."""
    reason = rabbitmq.available()
    if reason is not None:
        pytest.skip(reason)
    vhost = RabbitVhost(f"tally-test-{os.getpid()}-{secrets.token_hex(3)}")
    vhost.create()
    try:
        yield vhost
    finally:
        vhost.delete()


@pytest.fixture(params=["redis", "rabbitmq"])
def any_broker(request: pytest.FixtureRequest, redis_server: RedisServer) -> BrokerServer:
    """Each broker in turn, empty: the test runs once on Redis and once on RabbitMQ."""
    if request.param == "redis":
        return RedisBrokerServer(redis_server)
    vhost: RabbitVhost = request.getfixturevalue("rabbit_vhost")
    vhost.purge()
    return RabbitBrokerServer(vhost)


@pytest.fixture
def broker_stack(
    stacks: StackFactory, fault_env: dict[str, str], any_broker: BrokerServer, db: Database
) -> Stack:
    """Processes on the test database (emptied first) and each broker in turn."""
    return stacks({**fault_env, **any_broker.env()})


@pytest.fixture
def stacks(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StackFactory]:
    """Make stacks of processes; all are stopped at the end, their logs shown on failure."""
    made: list[Stack] = []

    def make(env: dict[str, str]) -> Stack:
        stack = Stack(env, tmp_path / f"logs{len(made)}")
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stack.stop_all()
    if _failed(request.node):
        for stack in made:
            print(stack.report())


@pytest.fixture
def stack(stacks: StackFactory, fault_env: dict[str, str], db: Database) -> Stack:
    """Processes on the test database (emptied first) and the private Redis."""
    return stacks(fault_env)


@pytest.fixture
def user(db: Database) -> NewUser:
    """A user with credits enough for every test here."""
    return create_user(db.sessions, "fault-user", credits=10_000_000)


def _failed(item: pytest.Item) -> bool:
    return any(
        getattr(getattr(item, f"report_{when}", None), "failed", False)
        for when in ("setup", "call")
    )
