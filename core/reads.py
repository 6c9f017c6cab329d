"""Hot read paths (status polls) on a lean engine: no pre-ping, no transaction, one retry.

Each poll is a single SELECT, so it runs in autocommit and skips the pool's pre-ping round
trip. A connection that turns out to be dead is invalidated by SQLAlchemy and the read is
tried once more on a fresh one: reads are always safe to repeat.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

T = TypeVar("T")


def read(engine: Engine, query: Callable[[Connection], T]) -> T:
    """Run one read; if its connection was cut, run it again on a new connection."""
    try:
        with engine.connect() as connection:
            return query(connection)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    with engine.connect() as connection:
        return query(connection)
