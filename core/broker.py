"""The Dramatiq broker every process that sends or receives slice messages builds."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from core.settings import Settings
from core.slice_messages import SLICE_QUEUE


def make_broker(settings: Settings) -> dramatiq.Broker:
    """Return a Redis (or RabbitMQ, or for unit tests the stub) broker for the slice queue."""
    settings.require_broker()
    broker: dramatiq.Broker
    if settings.redis_url:
        broker = RedisBroker(url=settings.redis_url)  # type: ignore[no-untyped-call]
    elif settings.rabbitmq_url:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=settings.rabbitmq_url)
    else:
        from dramatiq.brokers.stub import StubBroker

        broker = StubBroker()
    broker.declare_queue(SLICE_QUEUE)
    return broker
