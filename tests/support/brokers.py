"""The two brokers a fault test may run on, behind one face: env, messages, losing queues."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import dramatiq

from core.broker import make_broker
from core.settings import Settings
from harness.stack import RedisServer
from tests.support.rabbitmq import RabbitVhost

TURN_MESSAGES = "dramatiq:turns.msgs"
DELAYED_MESSAGES = "dramatiq:turns.DQ.msgs"


class BrokerServer(Protocol):
    """A broker of a test's own."""

    kind: str

    def env(self) -> dict[str, str]:
        """What a process's environment names to use this broker (and only it)."""
        ...

    def waiting(self) -> int:
        """Turn messages queued or in flight, delayed ones included."""
        ...

    def ready(self) -> int:
        """Turn messages waiting for a consumer (none held by one)."""
        ...

    def lose_queues(self) -> int:
        """Lose every queued message, as a flushed or failed-over broker does; how many."""
        ...


@dataclass
class RedisBrokerServer:
    """The private Redis of a fault test as the broker."""

    redis: RedisServer
    kind: str = "redis"

    def env(self) -> dict[str, str]:
        return {"REDIS_URL": self.redis.url, "TALLY_BROKER": "redis"}

    def waiting(self) -> int:
        with self.redis.client() as client:
            return int(client.hlen(TURN_MESSAGES)) + int(client.hlen(DELAYED_MESSAGES))

    def ready(self) -> int:
        with self.redis.client() as client:
            return int(client.llen("dramatiq:turns"))

    def lose_queues(self) -> int:
        lost = self.waiting()
        self.redis.flushall()
        return lost


@dataclass
class RabbitBrokerServer:
    """A RabbitMQ virtual host as the broker, with no Redis anywhere in the environment."""

    vhost: RabbitVhost
    kind: str = "rabbitmq"

    def env(self) -> dict[str, str]:
        return {"RABBITMQ_URL": self.vhost.url, "REDIS_URL": "", "TALLY_BROKER": "rabbitmq"}

    def waiting(self) -> int:
        return sum(self.vhost.messages().values())

    def ready(self) -> int:
        return sum(self.vhost.messages("messages_ready").values())

    def lose_queues(self) -> int:
        return self.vhost.purge()


def sender(server: BrokerServer, database_url: str) -> dramatiq.Broker:
    """A broker that sends slice messages as the web and the sweep do."""
    env = {"DATABASE_URL": database_url, **server.env()}
    return make_broker(Settings.from_env(env))
