"""README's connection budget is the arithmetic of the default settings and the Procfile."""

from __future__ import annotations

import re

import pytest

from core.database import READER_POOL_SIZE
from core.errors import ConfigurationError
from core.migrate import PROJECT_ROOT
from core.settings import Settings
from tests.support.budget import documented_budget
from webhooks.daemon import POOL_SIZE as WEBHOOKS_POOL_SIZE
from worker.resources import pool_size

DEFAULTS = Settings(database_url="postgresql+psycopg2://u@h/db")
MAX_CONNECTIONS = 100  # PostgreSQL's default
LISTENER = 1


def worker_flags() -> tuple[int, int]:
    """The Procfile worker's --processes and --threads."""
    procfile = (PROJECT_ROOT / "Procfile").read_text()
    line = next(line for line in procfile.splitlines() if line.startswith("worker:"))
    processes = re.search(r"--processes (\d+)", line)
    threads = re.search(r"--threads (\d+)", line)
    assert processes and threads, line
    return int(processes.group(1)), int(threads.group(1))


def test_each_row_is_what_the_defaults_open() -> None:
    rows, _ = documented_budget()
    processes, threads = worker_flags()
    assert rows["tally-web"].per_process == DEFAULTS.web_pool_size + READER_POOL_SIZE
    assert rows["tally-web-listener"].per_process == LISTENER
    assert rows["tally-worker"].per_process == pool_size(DEFAULTS, threads)
    assert rows["tally-worker"].processes == processes
    assert rows["tally-reconcile"].per_process == DEFAULTS.reconcile_pool_size
    assert rows["tally-webhooks"].per_process == WEBHOOKS_POOL_SIZE
    assert rows["tally-reconcile-listener"].per_process == LISTENER
    assert rows["tally-reconcile-listener"].processes == rows["tally-reconcile"].processes
    assert all(row.at_most == row.per_process * row.processes for row in rows.values())


def test_the_total_adds_up_and_leaves_room_under_the_default_max_connections() -> None:
    rows, total = documented_budget()
    assert total == sum(row.at_most for row in rows.values())
    assert total <= MAX_CONNECTIONS // 2


def test_an_explicit_worker_pool_size_wins_over_the_threads() -> None:
    assert pool_size(DEFAULTS, threads=8) == 10
    assert pool_size(DEFAULTS.with_changes(worker_pool_size=4), threads=8) == 4


def test_the_pool_sizes_come_from_the_environment_and_are_checked() -> None:
    env = {
        "DATABASE_URL": "postgres://h/db",
        "TALLY_WEB_POOL_SIZE": "7",
        "TALLY_WORKER_POOL_SIZE": "5",
        "TALLY_RECONCILE_POOL_SIZE": "3",
    }
    settings = Settings.from_env(env)
    assert (settings.web_pool_size, settings.worker_pool_size) == (7, 5)
    assert settings.reconcile_pool_size == 3
    with pytest.raises(ConfigurationError, match="TALLY_WEB_POOL_SIZE must be an integer >= 1"):
        Settings.from_env({**env, "TALLY_WEB_POOL_SIZE": "0"})
