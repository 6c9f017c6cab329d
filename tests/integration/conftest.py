"""An in-process Dramatiq worker on the real Redis broker."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import dramatiq
import pytest

from core.settings import Settings

WorkerRunner = Callable[..., contextlib.AbstractContextManager[dramatiq.Worker]]


@pytest.fixture(scope="session")
def broker(database_url: str, redis_url: str) -> dramatiq.Broker:
    """Dramatiq's global broker, configured as `dramatiq worker.actors` configures it."""
    os.environ["REDIS_URL"] = redis_url
    os.environ["DATABASE_URL"] = database_url
    import worker.actors

    return worker.actors.broker


@pytest.fixture
def run_worker(
    broker: dramatiq.Broker, settings: Settings, redis_client: Any
) -> Iterator[WorkerRunner]:
    """Start a real worker with the test's settings for the length of a `with` block."""
    from worker.resources import ProcessResources

    @contextlib.contextmanager
    def running(threads: int = 4, **changes: Any) -> Iterator[dramatiq.Worker]:
        for middleware in broker.middleware:
            if isinstance(middleware, ProcessResources):
                middleware.settings = settings.with_changes(**changes)
        worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
        worker.start()
        try:
            yield worker
        finally:
            worker.stop()
            broker.middleware[:] = [m for m in broker.middleware if not _belongs_to(m, worker)]

    broker.flush_all()
    yield running
    broker.flush_all()


def _belongs_to(middleware: object, worker: dramatiq.Worker) -> bool:
    return getattr(middleware, "worker", None) is worker
