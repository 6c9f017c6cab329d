"""Keeping a slice's lease alive while its provider calls run."""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from sqlalchemy.exc import SQLAlchemyError

from core.database import SessionFactory
from worker.slices import SliceClaim, extend_lease

logger = logging.getLogger(__name__)


class LeaseKeeper:
    """A background thread that extends a claimed slice's lease every `interval` seconds."""

    def __init__(
        self, sessions: SessionFactory, claim: SliceClaim, lease: float, interval: float
    ) -> None:
        self._sessions = sessions
        self._claim = claim
        self._lease = lease
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tally-lease", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if not extend_lease(self._sessions, self._claim, self._lease):
                    logger.warning(
                        "lease of slice %s/%s was taken over",
                        self._claim.job_id,
                        self._claim.slice_index,
                    )
                    return
            except SQLAlchemyError:
                logger.warning("could not extend the lease; retrying", exc_info=True)
