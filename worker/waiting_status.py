"""Telling a job's owner why it is slow: `jobs.waiting` and `jobs.retry_at`.

Written from the provider loop through one writer thread per process (so a clear never
overtakes the wait it clears), only when the reason changes or the time moves by a second.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
import uuid

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core.database import SessionFactory
from core.finish import notify_progress
from core.vocabulary import UNFINISHED_SQL

logger = logging.getLogger(__name__)

MOVE_SECONDS = 1.0

SET_WAITING = text(
    "UPDATE jobs SET waiting = :waiting, retry_at = to_timestamp(:retry_at), "
    "updated_at = now() "
    f"WHERE id = :job_id AND status IN {UNFINISHED_SQL} "
    "AND (waiting IS DISTINCT FROM :waiting OR retry_at IS DISTINCT FROM to_timestamp(:retry_at))"
)


def set_waiting(
    session: Session, job_id: uuid.UUID, waiting: str | None, retry_at: float | None
) -> None:
    """Set (or clear, with None) why a job waits, inside the caller's transaction."""
    changed = session.execute(
        SET_WAITING, {"waiting": waiting, "retry_at": retry_at, "job_id": job_id}
    )
    if changed.rowcount:  # type: ignore[attr-defined]
        notify_progress(session, job_id)


class WaitingStatus:
    """The listener a slice run tells when it starts or stops waiting on its provider."""

    def __init__(
        self,
        sessions: SessionFactory,
        job_id: uuid.UUID,
        writer: concurrent.futures.Executor,
    ) -> None:
        self._sessions = sessions
        self._job_id = job_id
        self._writer = writer
        self._reason: str | None = None
        self._retry_at: float | None = None

    def __call__(self, reason: str | None, retry_at: float | None) -> None:
        if reason == self._reason and not _moved(self._retry_at, retry_at):
            return
        self._reason, self._retry_at = reason, retry_at
        self._writer.submit(self._write, reason, retry_at)

    def _write(self, reason: str | None, retry_at: float | None) -> None:
        try:
            with self._sessions() as session, session.begin():
                set_waiting(session, self._job_id, reason, retry_at)
        except SQLAlchemyError:
            logger.warning("could not record that job %s waits", self._job_id, exc_info=True)


def _moved(before: float | None, after: float | None) -> bool:
    if before is None or after is None:
        return before is not after
    return abs(after - before) >= MOVE_SECONDS and after > time.time()
