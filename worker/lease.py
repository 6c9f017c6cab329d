"""Keeping a turn's slice leases alive while their provider calls run."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from types import TracebackType

from sqlalchemy.exc import SQLAlchemyError

from core.database import SessionFactory
from worker.slices import SliceClaim, extend_leases

logger = logging.getLogger(__name__)


class LeaseKeeper:
    """A background thread that extends claimed slices' leases every `interval` seconds."""

    def __init__(
        self, sessions: SessionFactory, claims: Sequence[SliceClaim], lease: float, interval: float
    ) -> None:
        self._sessions = sessions
        self._claims = list(claims)
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
                kept = extend_leases(self._sessions, self._claims, self._lease)
                for lost in [c for c in self._claims if (c.job_id, c.slice_index) not in kept]:
                    logger.warning(
                        "lease of slice %s/%s was taken over", lost.job_id, lost.slice_index
                    )
                self._claims = [c for c in self._claims if (c.job_id, c.slice_index) in kept]
                if not self._claims:
                    return
            except SQLAlchemyError:
                logger.warning("could not extend the lease; retrying", exc_info=True)
