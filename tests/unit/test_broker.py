"""The broker every process builds, the worker's additions, and how slice messages look."""

from __future__ import annotations

import socket

import pytest
import redis
from dramatiq import Message
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware.prometheus import Prometheus

from core.broker import make_broker
from core.errors import ConfigurationError
from core.settings import Settings
from core.turn_messages import TAKE_TURN, TURN_QUEUE, send_turns
from worker.broker import worker_broker
from worker.resources import ProcessResources

BASE = Settings(database_url="postgresql+psycopg2://u@h/db", redis_url="")
STUB = BASE.with_changes(stub_broker=True)


def middleware_types(settings: Settings) -> set[type]:
    return {type(m) for m in worker_broker(settings).middleware}


def test_a_broker_url_is_required() -> None:
    with pytest.raises(ConfigurationError, match="REDIS_URL"):
        make_broker(BASE)


def test_a_sender_broker_knows_the_queue_but_no_worker_code() -> None:
    broker = make_broker(STUB)
    assert isinstance(broker, StubBroker)
    assert TURN_QUEUE in broker.get_declared_queues()
    assert ProcessResources not in {type(m) for m in broker.middleware}
    assert broker.actors == {}


def test_the_worker_broker_gets_the_process_resources_and_the_actor() -> None:
    broker = worker_broker(STUB)
    assert ProcessResources in {type(m) for m in broker.middleware}
    actor = broker.get_actor(TAKE_TURN)
    assert actor.queue_name == TURN_QUEUE


def test_dramatiq_metrics_are_added_only_when_enabled() -> None:
    assert Prometheus not in middleware_types(STUB)
    assert Prometheus in middleware_types(STUB.with_changes(dramatiq_metrics=True))


def test_sent_turns_name_the_actor_and_carry_nothing_else() -> None:
    broker = make_broker(STUB)
    assert send_turns(broker, 3) == 3
    queued = list(broker.queues[TURN_QUEUE].queue)  # type: ignore[attr-defined]
    decoded = [Message.decode(data) for data in queued]
    assert [(m.actor_name, m.args) for m in decoded] == [(TAKE_TURN, ())] * 3


def test_settings_read_the_broker_choice_from_the_environment() -> None:
    env = {
        "DATABASE_URL": "postgres://h/db",
        "TALLY_BROKER": "stub",
        "TALLY_DRAMATIQ_METRICS": "true",
        "RABBITMQ_URL": "amqp://h",
    }
    settings = Settings.from_env(env)
    assert settings.stub_broker and settings.dramatiq_metrics
    assert settings.rabbitmq_url == "amqp://h"


def test_an_unknown_broker_name_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="TALLY_BROKER"):
        Settings.from_env({"DATABASE_URL": "postgres://h/db", "TALLY_BROKER": "kafka"})


def test_a_redis_that_never_answers_costs_the_timeout_not_a_hang() -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        host, port = silent.getsockname()
        hung = BASE.with_changes(redis_url=f"redis://{host}:{port}/0", broker_timeout=0.3)
        broker = make_broker(hung)
        with pytest.raises(redis.TimeoutError):  # a hang would be stopped by pytest-timeout
            send_turns(broker, 1)
