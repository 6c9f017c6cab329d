"""The servers of one bench run: a database of its own on PostgreSQL, and a private Redis."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from sqlalchemy import make_url

from core.migrate import upgrade
from core.settings import normalize_database_url
from devstack.embedded import EmbeddedPostgres, EmbeddedRedis

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Servers:
    """Where the run's database and broker live."""

    server_url: str
    database_name: str
    database_url: str
    redis_url: str
    postgres_version: str


def _libpq(url: str) -> str:
    return str(make_url(normalize_database_url(url)).set(drivername="postgresql"))


def _answers(url: str) -> bool:
    try:
        psycopg2.connect(url, connect_timeout=2).close()
    except psycopg2.OperationalError:
        return False
    return True


def _admin(server_url: str, statement: str) -> str:
    connection = psycopg2.connect(server_url)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
            row = cursor.fetchone() if cursor.description else None
            return "" if row is None else str(row[0])
    finally:
        connection.close()


@contextlib.contextmanager
def postgres_server(given: str | None, scratch: Path) -> Iterator[str]:
    """The given server, else PostgreSQL on 127.0.0.1:5432, else an embedded one."""
    url = given or os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if url:
        yield _libpq(url)
        return
    if _answers(LOCAL_SERVER):
        yield LOCAL_SERVER
        return
    server = EmbeddedPostgres.start(scratch)
    try:
        yield server.url
    finally:
        server.stop()


@contextlib.contextmanager
def bench_database(server_url: str) -> Iterator[str]:
    """A fresh, migrated `tally_bench_<random>` database, dropped afterwards."""
    name = f"tally_bench_{secrets.token_hex(4)}"
    _admin(server_url, f'CREATE DATABASE "{name}"')
    try:
        url = str(make_url(server_url).set(database=name))
        upgrade(url)
        yield url
    finally:
        _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def running_servers(scratch: Path, database_url: str | None = None) -> Iterator[Servers]:
    """Start (or find) every server the benchmarks need, and clean up after."""
    with postgres_server(database_url, scratch) as server_url, bench_database(server_url) as url:
        redis = EmbeddedRedis.start(scratch, persistent=False)
        try:
            yield Servers(
                server_url=server_url,
                database_name=make_url(url).database or "",
                database_url=url,
                redis_url=redis.url,
                postgres_version=_admin(server_url, "SHOW server_version"),
            )
        finally:
            redis.stop()
