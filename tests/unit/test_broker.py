"""The broker every process builds, the worker's additions, and how slice messages look."""

from __future__ import annotations

import socket

import pytest
import redis
from dramatiq import Message
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware.prometheus import Prometheus

from core.broker import describe_broker, make_broker
from core.errors import ConfigurationError
from core.settings import Settings
from core.turn_messages import TAKE_TURN, TURN_QUEUE, send_turns
from worker.broker import worker_broker
from worker.resources import ProcessResources

BASE = Settings(database_url="postgresql+psycopg2://u@h/db", redis_url="")
STUB = BASE.with_changes(broker="stub")


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


def broker_env(**env: str) -> Settings:
    return Settings.from_env({"DATABASE_URL": "postgres://h/db", **env})


def test_rabbitmq_is_chosen_whenever_its_url_is_given_even_beside_redis() -> None:
    both = broker_env(REDIS_URL="redis://r:6379/0", RABBITMQ_URL="amqp://u:p@rabbit:5672/v")
    assert both.broker_kind == "rabbitmq"
    assert describe_broker(both) == "rabbitmq at rabbit:5672/v (RABBITMQ_URL)"
    assert broker_env(REDIS_URL="redis://r:6379/0").broker_kind == "redis"


def test_the_cloudamqp_add_on_variable_is_accepted() -> None:
    settings = broker_env(CLOUDAMQP_URL="amqps://u:secret@cloud.example/vh")
    assert settings.broker_kind == "rabbitmq" and settings.amqp_url.endswith("/vh")
    assert "secret" not in describe_broker(settings)
    assert "(CLOUDAMQP_URL)" in describe_broker(settings)


def test_an_explicit_broker_wins_and_needs_its_url() -> None:
    env = {"REDIS_URL": "redis://r:6379/0", "RABBITMQ_URL": "amqp://rabbit"}
    assert broker_env(TALLY_BROKER="redis", **env).broker_kind == "redis"
    with pytest.raises(ConfigurationError, match="TALLY_BROKER is rabbitmq but RABBITMQ_URL"):
        broker_env(TALLY_BROKER="rabbitmq", REDIS_URL="redis://r").require_broker()
    with pytest.raises(ConfigurationError, match="TALLY_BROKER is redis but REDIS_URL"):
        broker_env(TALLY_BROKER="redis", RABBITMQ_URL="amqp://rabbit").require_broker()


def test_two_rabbitmq_urls_that_disagree_are_refused() -> None:
    settings = broker_env(RABBITMQ_URL="amqp://a", CLOUDAMQP_URL="amqp://b")
    with pytest.raises(ConfigurationError, match="different servers"):
        settings.require_broker()


def test_the_http_provider_needs_redis_for_its_shared_pacing_whatever_the_broker() -> None:
    http = {"TALLY_PROVIDER": "http", "TALLY_PROVIDER_URL": "https://p.example/accounts"}
    with pytest.raises(ConfigurationError, match="REDIS_URL is not set: the http provider"):
        broker_env(RABBITMQ_URL="amqp://rabbit", **http).require_broker()
    broker_env(RABBITMQ_URL="amqp://rabbit", REDIS_URL="redis://r", **http).require_broker()
    broker_env(RABBITMQ_URL="amqp://rabbit").require_broker()  # the sandbox needs no Redis


def test_a_rabbitmq_broker_confirms_sends_and_keeps_the_urls_own_options() -> None:
    settings = broker_env(RABBITMQ_URL="amqp://u:p@rabbit:5672/%2F?heartbeat=30")
    broker = make_broker(settings)
    assert broker.confirm_delivery  # type: ignore[attr-defined]
    assert broker.parameters.heartbeat == 30  # type: ignore[attr-defined]
    assert broker.parameters.virtual_host == "/"  # type: ignore[attr-defined]
    assert broker.parameters.socket_timeout == settings.broker_timeout  # type: ignore[attr-defined]
