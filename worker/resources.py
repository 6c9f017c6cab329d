"""Per-process resources of a worker, created after fork and disposed at shutdown."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq

from core.database import Database
from core.providers.registry import build_provider
from core.settings import Settings
from core.turn_messages import send_turns
from worker.cancellation import CancelWatcher
from worker.processing import Resend, SliceContext
from worker.provider_loop import ProviderLoop
from worker.pushback import PushbackPolicy

logger = logging.getLogger(__name__)

_context: SliceContext | None = None
_broker: dramatiq.Broker | None = None


def current() -> SliceContext:
    """Return this process's slice context; set up by ProcessResources."""
    if _context is None:
        raise RuntimeError("worker resources are not set up in this process")
    return _context


def broker() -> dramatiq.Broker:
    """Return the broker this process's worker consumes from; set up by ProcessResources."""
    if _broker is None:
        raise RuntimeError("worker resources are not set up in this process")
    return _broker


def pool_size(settings: Settings, threads: int) -> int:
    """Connections of one worker process: TALLY_WORKER_POOL_SIZE, else one per thread + 2.

    A thread holds one connection at a time; the two more serve its lease renewals.
    """
    return settings.worker_pool_size or threads + 2


def resend_after(broker: dramatiq.Broker) -> Resend:
    """Send a turn after a delay (0: now), on this process's broker; a failed send is left
    to the sweep."""

    def resend(delay: float) -> None:
        try:
            send_turns(broker, 1, int(delay * 1000) or None)
        except Exception:
            logger.warning("could not send a turn; the sweep will", exc_info=True)

    return resend


class ProcessResources(dramatiq.Middleware):
    """Creates the database engine when a worker boots and disposes it at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.database: Database | None = None
        self.provider_loop: ProviderLoop | None = None
        self.cancellations: CancelWatcher | None = None

    def before_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        global _context, _broker
        _broker = broker
        threads = int(getattr(worker, "worker_threads", 8))
        self.database = Database.from_settings(
            self.settings,
            pool_size=pool_size(self.settings, threads),
            application_name="tally-worker",
        )
        self.provider_loop = ProviderLoop(
            self.settings.provider_concurrency, PushbackPolicy.from_settings(self.settings)
        )
        self.cancellations = CancelWatcher(self.database.sessions)
        self.cancellations.start()
        _context = SliceContext(
            sessions=self.database.sessions,
            settings=self.settings,
            box=self.settings.secret_box(),
            # Connections to a provider outlive slices: one provider per name per process.
            providers=self.provider_loop.shared_providers(build_provider),
            provider_loop=self.provider_loop,
            resend=resend_after(broker),
            cancellations=self.cancellations,
        )
        logger.info("worker resources ready (%d threads)", threads)

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        global _context, _broker
        _context = _broker = None
        if self.cancellations is not None:
            self.cancellations.close()
            self.cancellations = None
        if self.provider_loop is not None:
            self.provider_loop.close()
            self.provider_loop = None
        if self.database is not None:
            self.database.dispose()
            self.database = None
