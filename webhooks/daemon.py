"""The webhooks process: read the outbox into deliveries, and attempt the due ones.

Any number of these processes may run: the fan-out's position is one locked row and its
inserts are idempotent; deliveries are claimed with SKIP LOCKED.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from core.database import Database
from core.settings import Settings
from webhooks.deliverer import Deliverer
from webhooks.fanout import BATCH, fan_out

logger = logging.getLogger(__name__)
STARTED = "webhooks daemon started"
# The fan-out, the claims and the short record after each attempt (threads take turns).
POOL_SIZE = 3


def run(settings: Settings) -> None:
    """Fan out and deliver every interval until SIGTERM or SIGINT."""
    database = Database.from_settings(
        settings, pool_size=POOL_SIZE, application_name="tally-webhooks"
    )
    deliverer = Deliverer(database.sessions, settings.secret_box(), settings.webhooks)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        logger.info("webhooks daemon stopping (signal %d)", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info(STARTED)
    try:
        while not stopping.wait(settings.webhooks.interval):
            _tick(database, deliverer)
    finally:
        deliverer.close()
        database.dispose()
        logger.info("webhooks daemon stopped")


def _tick(database: Database, deliverer: Deliverer) -> None:
    try:
        while fan_out(database.sessions) == BATCH:
            pass
        deliverer.run_pass()
    except Exception:
        logger.exception("webhooks pass failed; retrying next interval")
