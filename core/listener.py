"""One PostgreSQL connection per process that LISTENs for notifications, in a thread.

The thread blocks in select() on the connection's socket, hands every notification to a
callback, pings the server now and then, and reconnects with backoff when the connection
is cut. Nothing else uses this connection, so waiting requests never hold one.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable, Sequence

import psycopg2
import psycopg2.extensions
from sqlalchemy import make_url

from core.settings import normalize_database_url

logger = logging.getLogger(__name__)

Deliver = Callable[[str, str], None]

SELECT_TIMEOUT = 1.0
PING_INTERVAL = 15.0
FIRST_RETRY = 0.1
LAST_RETRY = 5.0


def libpq_dsn(database_url: str) -> str:
    """Return a libpq URL (password kept) for a SQLAlchemy-style database URL."""
    url = make_url(normalize_database_url(database_url)).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class Listener:
    """A daemon thread holding one LISTEN connection; calls `deliver(channel, payload)`."""

    def __init__(
        self,
        database_url: str,
        channels: Sequence[str],
        deliver: Deliver,
        on_connect: Callable[[], None],
        application_name: str = "tally-web-listener",
    ) -> None:
        self._dsn = libpq_dsn(database_url)
        self._channels = tuple(channels)
        self._deliver = deliver
        self._on_connect = on_connect
        self._application_name = application_name
        self._stop = threading.Event()
        self._wake_reader, self._wake_writer = os.pipe()
        self._connected = threading.Event()
        self.connections = 0
        self._thread = threading.Thread(target=self._run, name="tally-listener", daemon=True)

    @property
    def connected(self) -> bool:
        """Whether notifications are flowing right now."""
        return self._connected.is_set()

    def start(self) -> None:
        """Start the thread; it connects (and reconnects) by itself."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to close its connection and wait for it to end."""
        self._stop.set()
        os.write(self._wake_writer, b"x")  # cut select() short instead of waiting it out
        self._thread.join(timeout=SELECT_TIMEOUT * 3)
        for descriptor in (self._wake_reader, self._wake_writer):
            os.close(descriptor)

    def wait_connected(self, timeout: float) -> bool:
        """Block until the connection is listening (tests and start-up use this)."""
        return self._connected.wait(timeout)

    def _run(self) -> None:
        delay = FIRST_RETRY
        while not self._stop.is_set():
            try:
                connection = self._connect()
            except psycopg2.Error as exc:
                logger.warning("listener cannot connect (%s); retrying in %.1fs", exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, LAST_RETRY)
                continue
            delay = FIRST_RETRY
            self._serve(connection)

    def _serve(self, connection: psycopg2.extensions.connection) -> None:
        self.connections += 1
        try:
            self._on_connect()  # whatever changed while nobody listened: wake every waiter
            self._connected.set()
            self._listen(connection)
        except (psycopg2.Error, OSError, ValueError) as exc:
            if not self._stop.is_set():
                logger.warning("listener connection lost (%s); reconnecting", exc)
        finally:
            self._connected.clear()
            connection.close()

    def _connect(self) -> psycopg2.extensions.connection:
        connection = psycopg2.connect(
            self._dsn,
            application_name=self._application_name,
            connect_timeout=5,
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
        )
        connection.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
        with connection.cursor() as cursor:
            for channel in self._channels:
                cursor.execute(f'LISTEN "{channel}"')
        logger.info("listening for %s", ", ".join(self._channels))
        return connection

    def _listen(self, connection: psycopg2.extensions.connection) -> None:
        last_ping = time.monotonic()
        while not self._stop.is_set():
            readable, _, _ = select.select([connection, self._wake_reader], [], [], SELECT_TIMEOUT)
            if self._stop.is_set():
                return
            if readable:
                connection.poll()
                self._drain(connection)
            elif time.monotonic() - last_ping > PING_INTERVAL:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT 1")
                last_ping = time.monotonic()
                self._drain(connection)

    def _drain(self, connection: psycopg2.extensions.connection) -> None:
        while connection.notifies:
            notify = connection.notifies.pop(0)
            self._deliver(notify.channel, notify.payload)
