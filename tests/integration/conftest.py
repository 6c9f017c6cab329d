"""A real Dramatiq worker in the test process, and a broker to send it messages, on Redis."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import dramatiq
import pytest

from core.broker import make_broker
from core.settings import Settings
from worker.broker import worker_broker

WorkerRunner = Callable[..., contextlib.AbstractContextManager[dramatiq.Worker]]


@pytest.fixture
def broker(settings: Settings, redis_client: Any) -> Iterator[dramatiq.Broker]:
    """A broker on the test's (emptied) Redis, as the web process and the sweep build it."""
    sender = make_broker(settings)
    try:
        yield sender
    finally:
        sender.flush_all()
        sender.close()


@pytest.fixture
def run_worker(settings: Settings, broker: dramatiq.Broker) -> Iterator[WorkerRunner]:
    """Start a real worker with the test's settings for the length of a `with` block."""

    @contextlib.contextmanager
    def running(threads: int = 4, **changes: Any) -> Iterator[dramatiq.Worker]:
        receiver = worker_broker(settings.with_changes(**changes))
        worker = dramatiq.Worker(receiver, worker_threads=threads, worker_timeout=100)
        worker.start()
        try:
            yield worker
        finally:
            worker.stop()
            receiver.close()

    yield running
