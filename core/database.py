"""The database engine and session factory, created once per process (after fork)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings, normalize_database_url

SessionFactory = sessionmaker[Session]

# Hot reads are a single short SELECT each; a few connections serve thousands per second.
READER_POOL_SIZE = 4


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    application_name: str = "tally",
    autocommit: bool = False,
    connect_args: Mapping[str, Any] | None = None,
) -> Engine:
    """Create an engine: every process's connections come from here.

    A pool never opens more than `pool_size` connections (no overflow): each process's
    share of PostgreSQL's `max_connections` is fixed (README, "Connection budget"). A
    transactional engine checks each connection before use (pre-ping), so its pool
    survives cut connections. An autocommit one, for single-statement reads and session
    locks, skips that round trip (core/reads.py retries).
    """
    return create_engine(
        normalize_database_url(url),
        pool_pre_ping=not autocommit,
        pool_size=pool_size,
        max_overflow=0,
        pool_recycle=1800,
        connect_args={"application_name": application_name, **(connect_args or {})},
        **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
    )


def make_session_factory(engine: Engine) -> SessionFactory:
    """Return a session factory whose sessions do not expire objects on commit."""
    return sessionmaker(engine, expire_on_commit=False)


def session_limits(settings: Settings) -> dict[str, int]:
    """Server-side limits for every transaction of a process, in milliseconds.

    Nothing a process holds outlives them: a statement, a wait for a lock, or a transaction
    left open (a process frozen or stuck mid-transaction) is ended by PostgreSQL itself,
    which releases its locks.
    """
    limits = {
        "statement_timeout": settings.statement_timeout,
        "lock_timeout": settings.lock_timeout,
        "idle_in_transaction_session_timeout": settings.idle_transaction_timeout,
    }
    return {name: round(seconds * 1000) for name, seconds in limits.items()}


def startup_options(limits: Mapping[str, int]) -> str:
    """The limits as libpq `options`, set once when a direct connection opens."""
    return " ".join(f"-c {name}={value}" for name, value in limits.items())


def limit_each_transaction(engine: Engine, limits: Mapping[str, int]) -> None:
    """Set the limits at the start of every transaction (`SET LOCAL`), for a pooler.

    Behind PgBouncer in transaction mode a connection is the client's for one transaction
    only: settings must not outlive it (nor may `options` be sent at connect, which
    PgBouncer refuses). One statement sets all three, in the transaction it limits.
    """
    assignments = ", ".join(
        f"set_config('{name}', '{value}', true)" for name, value in limits.items()
    )
    statement = f"SELECT {assignments}"

    def on_begin(connection: Connection) -> None:
        connection.exec_driver_sql(statement)

    event.listen(engine, "begin", on_begin)


class Database:
    """An engine plus its session factory, owned by one process."""

    def __init__(
        self,
        engine: Engine,
        application_name: str = "tally",
        connect_args: Mapping[str, Any] | None = None,
    ) -> None:
        self.engine = engine
        self.application_name = application_name
        self.sessions = make_session_factory(engine)
        self._connect_args = dict(connect_args or {})
        self._reader: Engine | None = None

    @property
    def reader(self) -> Engine:
        """A lean autocommit engine for hot single-statement reads (core/reads.py)."""
        if self._reader is None:
            self._reader = make_engine(
                self.engine.url.render_as_string(hide_password=False),
                pool_size=READER_POOL_SIZE,
                application_name=self.application_name,
                autocommit=True,
                connect_args=self._connect_args,
            )
        return self._reader

    @classmethod
    def from_settings(
        cls, settings: Settings, *, pool_size: int = 10, application_name: str = "tally"
    ) -> Database:
        """Create the process's database handle from settings.

        With TALLY_DATABASE_POOLING=transaction its connections carry no session state:
        the limits are set in each transaction, and the reader's single statements run
        under the role's defaults (README, "PgBouncer").
        """
        limits = session_limits(settings)
        pooled = settings.database_pooling == "transaction"
        connect_args = {} if pooled else {"options": startup_options(limits)}
        engine = make_engine(
            settings.database_url,
            pool_size=pool_size,
            application_name=application_name,
            connect_args=connect_args,
        )
        if pooled:
            limit_each_transaction(engine, limits)
        return cls(engine, application_name, connect_args)

    @classmethod
    def from_settings_url(cls, url: str, *, pool_size: int = 2) -> Database:
        """Create a small database handle for a one-off command."""
        return cls(make_engine(url, pool_size=pool_size, application_name="tally-cli"), "tally-cli")

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
        if self._reader is not None:
            self._reader.dispose()
