"""The Dramatiq broker every process that sends or receives turn messages builds."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

from core.settings import Settings
from core.trace_messages import TraceContext
from core.turn_messages import TURN_QUEUE

logger = logging.getLogger(__name__)

# pika's connection options tally sets unless the URL sets them: a dead peer is noticed
# within a minute, and a connect or a blocked publish gives up instead of hanging.
AMQP_DEFAULTS = {"heartbeat": "60", "connection_attempts": "3", "retry_delay": "1"}


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
    """Return the broker TALLY_BROKER (or the URL given) names, with the turn queue."""
    settings.require_broker()
    kind = settings.broker_kind
    broker: dramatiq.Broker
    if kind == "redis":
        broker = RedisBroker(client=redis_client(settings))  # type: ignore[no-untyped-call]
    elif kind == "rabbitmq":
        broker = rabbitmq_broker(settings)
    else:
        from dramatiq.brokers.stub import StubBroker

        broker = StubBroker()
    broker.add_middleware(TraceContext())
    logger.info("broker: %s", describe_broker(settings))
    broker.declare_queue(TURN_QUEUE)
    return broker


def rabbitmq_broker(settings: Settings) -> dramatiq.Broker:
    """A RabbitMQ broker (pika is imported only here, where it is used)."""
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    timeout = str(settings.broker_timeout)
    options = {**AMQP_DEFAULTS, "socket_timeout": timeout, "blocked_connection_timeout": timeout}
    # Confirmed publishes: a send returns once RabbitMQ holds the message (and a queue it
    # lost is declared again).
    return RabbitmqBroker(url=amqp_url_with(settings.amqp_url, options), confirm_delivery=True)


def amqp_url_with(url: str, defaults: dict[str, str]) -> str:
    """The URL with each default added as a query option unless the URL sets it."""
    parts = urlsplit(url)
    given = dict(parse_qsl(parts.query))
    return urlunsplit(parts._replace(query=urlencode({**defaults, **given})))


def describe_broker(settings: Settings) -> str:
    """The broker in use and where, without credentials: what each process prints at start."""
    kind = settings.broker_kind
    if kind == "rabbitmq":
        source = "RABBITMQ_URL" if settings.rabbitmq_url else "CLOUDAMQP_URL"
        return f"rabbitmq at {_where(settings.amqp_url)} ({source})"
    if kind == "redis":
        return f"redis at {_where(settings.redis_url)} (REDIS_URL)"
    return "stub (in memory, unit tests only)"


def _where(url: str) -> str:
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.hostname}{port}{parts.path}"
