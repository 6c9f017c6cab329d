"""What every benchmark is handed: the servers, sizes, settings and a database handle."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import text

from bench.servers import Servers
from core import schema
from core.crypto import generate_key
from core.database import Database
from core.migrate import PROJECT_ROOT
from core.settings import Settings, normalize_database_url

T = TypeVar("T", int, float)

# Every table of the schema, dependents first, for one TRUNCATE between benchmarks.
TABLES = ", ".join(table.name for table in reversed(schema.Base.metadata.sorted_tables))


@dataclass
class Bench:
    """One run's servers and choices, shared by the benchmarks it runs."""

    servers: Servers
    run_dir: Path
    quick: bool
    profile: bool = False
    full_history: bool = False  # bench history at a million jobs and ten million vault rows
    fernet_key: str = field(default_factory=generate_key)
    _database: Database | None = None

    @property
    def database(self) -> Database:
        """The bench process's own handle on the run's database."""
        if self._database is None:
            self._database = Database.from_settings(self.settings(), pool_size=4)
        return self._database

    def size(self, full: T, quick: T) -> T:
        """The full size, or the smaller one under --quick."""
        return quick if self.quick else full

    def settings(self, **changes: Any) -> Settings:
        """Settings as a service of this run reads them from its environment."""
        return Settings.from_env(self.env()).with_changes(**changes)

    def env(self, **overrides: str) -> dict[str, str]:
        """The environment a service process of this run starts with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
        env.update(
            DATABASE_URL=normalize_database_url(self.servers.database_url),
            REDIS_URL=self.servers.redis_url,
            TALLY_FERNET_KEY=self.fernet_key,
            TALLY_ENV="development",
            PYTHONPATH=str(PROJECT_ROOT),
        )
        env.update(overrides)
        return env

    def reset(self) -> None:
        """Empty every table, so each benchmark starts from the same state."""
        with self.database.engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
        with self.database.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM"))

    def close(self) -> None:
        """Release the bench process's connections."""
        if self._database is not None:
            self._database.dispose()
            self._database = None
