"""Building the Dramatiq broker from settings."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from core.errors import ConfigurationError
from core.settings import Settings
from worker.resources import ProcessResources


def make_broker(settings: Settings) -> dramatiq.Broker:
    """Return a Redis (or RabbitMQ) broker with tally's middleware added."""
    broker: dramatiq.Broker
    if settings.redis_url:
        broker = RedisBroker(url=settings.redis_url)  # type: ignore[no-untyped-call]
    elif settings.rabbitmq_url:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=settings.rabbitmq_url)
    elif settings.stub_broker:
        from dramatiq.brokers.stub import StubBroker

        broker = StubBroker()
    else:
        raise ConfigurationError("REDIS_URL (or RABBITMQ_URL) is not set")
    broker.add_middleware(ProcessResources(settings))
    if settings.dramatiq_metrics:
        # Dramatiq's own message metrics, served by its exposition fork (dramatiq_prom_port).
        from dramatiq.middleware.prometheus import Prometheus

        broker.add_middleware(Prometheus())
    return broker


def setup_broker(settings: Settings) -> dramatiq.Broker:
    """Create the broker and make it Dramatiq's global one."""
    broker = make_broker(settings)
    dramatiq.set_broker(broker)
    return broker
