"""The worker's broker: the shared one, with the worker's middleware and its actor."""

from __future__ import annotations

import dramatiq

from core.broker import make_broker
from core.settings import Settings
from worker.actors import declare_actors
from worker.resources import ProcessResources


def worker_broker(settings: Settings) -> dramatiq.Broker:
    """Return a broker that runs turns with resources built from these settings."""
    broker = make_broker(settings)
    broker.add_middleware(ProcessResources(settings))
    if settings.dramatiq_metrics:
        # Dramatiq's own message metrics, served by its exposition fork (dramatiq_prom_port).
        from dramatiq.middleware.prometheus import Prometheus

        broker.add_middleware(Prometheus())
    declare_actors(broker)
    return broker
