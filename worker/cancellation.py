"""Watching for cancelled jobs: one thread per worker process polls their cancel flags.

Each slice a process runs registers its job while its provider calls run; every
`interval` seconds (only while something is registered) one query reads which of those
jobs were cancelled, and their slices' lanes start no new call (worker/fanout.py).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Iterator

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from core.database import SessionFactory

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5

CANCELLED_AMONG = text(
    "SELECT id FROM jobs WHERE id = ANY(CAST(:ids AS uuid[])) AND cancel_requested_at IS NOT NULL"
)


class CancelWatcher:
    """Tells running slices, within `interval` seconds, that their job was cancelled."""

    def __init__(self, sessions: SessionFactory, interval: float = POLL_SECONDS) -> None:
        self._sessions = sessions
        self._interval = interval
        self._lock = threading.Lock()
        self._watched: Counter[uuid.UUID] = Counter()
        self._cancelled: dict[uuid.UUID, threading.Event] = {}
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tally-cancel-watch", daemon=True)

    def start(self) -> None:
        """Start polling in the background."""
        self._thread.start()

    def close(self) -> None:
        """Stop polling."""
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    @contextlib.contextmanager
    def watch(self, job_id: uuid.UUID) -> Iterator[threading.Event]:
        """An event that is set once the job's cancel is seen, while the block runs."""
        with self._lock:
            self._watched[job_id] += 1
            event = self._cancelled.setdefault(job_id, threading.Event())
        try:
            yield event
        finally:
            with self._lock:
                self._watched[job_id] -= 1
                if self._watched[job_id] <= 0:
                    del self._watched[job_id]
                    self._cancelled.pop(job_id, None)

    def watching(self) -> set[uuid.UUID]:
        """The jobs some slice of this process is watching now."""
        with self._lock:
            return set(self._watched)

    def poll(self) -> None:
        """Read the cancel flags of the watched jobs once and set their events."""
        with self._lock:
            ids = [job_id for job_id, event in self._cancelled.items() if not event.is_set()]
        if not ids:
            return
        with self._sessions() as session, session.begin():
            rows = session.execute(CANCELLED_AMONG, {"ids": [str(i) for i in ids]})
            found = {uuid.UUID(str(row.id)) for row in rows}
        with self._lock:
            for job_id in found:
                event = self._cancelled.get(job_id)
                if event is not None:
                    event.set()

    def _run(self) -> None:
        while not self._closing.wait(self._interval):
            try:
                self.poll()
            except SQLAlchemyError:
                logger.warning("could not read cancel flags; retrying", exc_info=True)
