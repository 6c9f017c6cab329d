"""Fixtures: real PostgreSQL and Redis, given by URL or started privately for the run."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
import redis
from sqlalchemy import make_url, text

from core import schema
from core.crypto import generate_key
from core.database import Database
from core.migrate import upgrade
from core.settings import Intervals, Settings, normalize_database_url
from tests.support.pgbouncer import PgBouncer
from tests.support.pgbouncer import binary as pgbouncer_binary

# Every table of the schema, dependents first, for one TRUNCATE.
TABLES = ", ".join(table.name for table in reversed(schema.Base.metadata.sorted_tables))
FERNET_KEY = generate_key()
# Redis's default number of databases.
REDIS_DATABASES = 16


def _libpq_url(url: str) -> str:
    return str(make_url(normalize_database_url(url)).set(drivername="postgresql"))


@pytest.fixture(scope="session")
def servers_dir() -> Iterator[Path]:
    """A folder for this run's embedded servers, outside pytest's rotating temp folders."""
    path = Path(tempfile.mkdtemp(prefix="tally-test-servers-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def server_database_url(servers_dir: Path) -> Iterator[str]:
    """A PostgreSQL server: TEST_DATABASE_URL, or an embedded one for this run."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield _libpq_url(given)
        return
    from devstack.embedded import EmbeddedPostgres

    server = EmbeddedPostgres.start(servers_dir)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(servers_dir: Path) -> Iterator[str]:
    """A Redis server: TEST_REDIS_URL, or an embedded one for this run."""
    given = os.environ.get("TEST_REDIS_URL")
    if given:
        yield worker_redis_url(given)
        return
    from devstack.embedded import EmbeddedRedis

    server = EmbeddedRedis.start(servers_dir, persistent=False)
    try:
        yield server.url
    finally:
        server.stop()


def worker_redis_url(url: str) -> str:
    """The Redis database of this pytest process: under pytest-xdist, worker gwN takes the
    Nth database after the given one (the tests flush theirs), so workers never share one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    parsed = urlsplit(url)
    given = int(parsed.path.strip("/") or 0)
    database = (given + int(worker[2:])) % REDIS_DATABASES
    return urlunsplit(parsed._replace(path=f"/{database}"))


def create_database(server_url: str, name: str) -> str:
    """Create an empty database on the server and return its URL."""
    connection = psycopg2.connect(server_url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()
    return str(make_url(server_url).set(database=name))


def drop_database(server_url: str, name: str) -> None:
    """Drop a database, disconnecting whoever is still in it."""
    connection = psycopg2.connect(server_url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    connection.close()


@pytest.fixture(scope="session")
def database_url(server_database_url: str) -> Iterator[str]:
    """A fresh database for this test run, migrated to head."""
    name = f"tally_test_{os.getpid()}_{secrets.token_hex(3)}"
    url = create_database(server_database_url, name)
    upgrade(url)
    try:
        yield url
    finally:
        drop_database(server_database_url, name)


def make_settings(database_url: str, redis_url: str, **changes: Any) -> Settings:
    """Settings for tests: small slices, fast intervals, a private Fernet key."""
    return Settings(
        database_url=normalize_database_url(database_url),
        redis_url=redis_url,
        fernet_key=FERNET_KEY,
        slice_size=50,
        provider_concurrency=32,
        intervals=Intervals(apply=0.2, sweep=0.5, heartbeat=0.5, lease=5, stale_enqueue=5),
        # Apps shared by a module's tests see many bad tokens on purpose; the limit has its own.
        auth_failures_per_minute=100_000,
    ).with_changes(**changes)


@pytest.fixture
def settings(database_url: str, redis_url: str) -> Settings:
    """Settings for one test."""
    return make_settings(database_url, redis_url)


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    """A database handle on empty tables."""
    database = Database.from_settings(settings, pool_size=5, application_name="tally-tests")
    with database.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis[bytes]]:
    """A client on an emptied Redis database."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def process_env(settings: Settings) -> dict[str, str]:
    """The environment a tally subprocess (web, worker, reconcile) runs with in tests."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        TALLY_FERNET_KEY=settings.fernet_key,
        TALLY_ENV="development",
        TALLY_SLICE_SIZE=str(settings.slice_size),
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
    )
    return env


@pytest.fixture(scope="session")
def pgbouncer(
    server_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PgBouncer]:
    """Debian's PgBouncer in transaction mode in front of the test server (skips without it)."""
    if pgbouncer_binary() is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer; .ci/run does)")
    bouncer = PgBouncer(tmp_path_factory.mktemp("pgbouncer"), server_database_url)
    bouncer.start()
    try:
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture
def pooled_settings(settings: Settings, pgbouncer: PgBouncer) -> Settings:
    """Settings whose DATABASE_URL is PgBouncer in transaction mode, the direct URL beside it."""
    return settings.with_changes(
        database_url=normalize_database_url(pgbouncer.url(settings.database_url)),
        database_direct_url=settings.database_url,
        database_pooling="transaction",
    )
