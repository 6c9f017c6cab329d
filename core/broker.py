"""The Dramatiq broker every process that sends or receives turn messages builds."""

from __future__ import annotations

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

from core.settings import Settings
from core.turn_messages import TURN_QUEUE


def redis_client(settings: Settings) -> redis.Redis[bytes]:
    """A Redis client whose every call gives up after TALLY_BROKER_TIMEOUT seconds.

    A Redis that accepts connections and never answers then costs a caller that long,
    never a hang.
    """
    timeout = settings.broker_timeout
    return redis.Redis.from_url(
        settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
    )


def make_broker(settings: Settings) -> dramatiq.Broker:
    """Return a Redis (or RabbitMQ, or for unit tests the stub) broker for the turn queue."""
    settings.require_broker()
    broker: dramatiq.Broker
    if settings.redis_url:
        broker = RedisBroker(client=redis_client(settings))  # type: ignore[no-untyped-call]
    elif settings.rabbitmq_url:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=settings.rabbitmq_url)
    else:
        from dramatiq.brokers.stub import StubBroker

        broker = StubBroker()
    broker.declare_queue(TURN_QUEUE)
    return broker
