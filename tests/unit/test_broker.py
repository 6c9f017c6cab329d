"""Building the Dramatiq broker from settings."""

from __future__ import annotations

import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware.prometheus import Prometheus

from core.errors import ConfigurationError
from core.settings import Settings
from worker.broker import make_broker
from worker.resources import ProcessResources

BASE = Settings(database_url="postgresql+psycopg2://u@h/db", redis_url="")


def middleware_types(settings: Settings) -> set[type]:
    return {type(m) for m in make_broker(settings).middleware}


def test_a_broker_url_is_required() -> None:
    with pytest.raises(ConfigurationError, match="REDIS_URL"):
        make_broker(BASE)


def test_every_broker_gets_the_process_resources() -> None:
    broker = make_broker(BASE.with_changes(stub_broker=True))
    assert isinstance(broker, StubBroker)
    assert ProcessResources in {type(m) for m in broker.middleware}


def test_dramatiq_metrics_are_added_only_when_enabled() -> None:
    assert Prometheus not in middleware_types(BASE.with_changes(stub_broker=True))
    enabled = BASE.with_changes(stub_broker=True, dramatiq_metrics=True)
    assert Prometheus in middleware_types(enabled)


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
