"""Tracing: configured only by OTEL_* variables, carried in Dramatiq messages, off for free."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import dramatiq
import pytest
from dramatiq import Message, Worker
from opentelemetry.trace import SpanKind

from core import tracing
from core.broker import make_broker
from core.errors import ConfigurationError, ProviderPushback
from core.logs import ContextFilter, JsonFormatter, log_context
from core.provider_spans import TracedProvider, traced
from core.providers.base import CreatedAccount
from core.settings import Settings
from core.trace_messages import OPTION
from core.tracing import TracingConfig
from core.turn_messages import TAKE_TURN, TURN_QUEUE, send_turns
from core.vocabulary import WaitingReason
from tests.support.spans import named, recorded_spans

STUB = Settings(database_url="postgresql+psycopg2://u@h/db", broker="stub")
ACCOUNT = CreatedAccount("ext-1", "user-1", "s3cret", {})


@pytest.mark.parametrize(
    ("env", "exporter"),
    [
        ({}, "none"),
        ({"OTEL_SERVICE_NAME": "tally"}, "none"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, "none"),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, "none"),
    ],
)
def test_tracing_is_on_only_when_the_standard_variables_ask(
    env: dict[str, str], exporter: str
) -> None:
    assert TracingConfig.from_env(env).exporter == exporter


def test_an_exporter_tally_does_not_ship_is_refused_by_name() -> None:
    with pytest.raises(ConfigurationError, match="OTEL_TRACES_EXPORTER must be one of"):
        TracingConfig.from_env({"OTEL_TRACES_EXPORTER": "zipkin"})


def test_with_tracing_off_nothing_is_recorded_or_added_to_messages() -> None:
    assert not tracing.enabled()
    broker = make_broker(STUB)
    with tracing.span("tally.submit") as span:
        assert not span.is_recording()
        send_turns(broker, 1)
    message = Message.decode(broker.queues[TURN_QUEUE].queue[0])  # type: ignore[attr-defined]
    assert OPTION not in message.options
    provider = Answering(ACCOUNT)
    assert traced(provider) is provider  # no wrapper, no cost per call


def test_a_turn_continues_the_trace_of_the_span_that_sent_its_message() -> None:
    broker = make_broker(STUB)
    seen: list[str] = []

    @dramatiq.actor(actor_name=TAKE_TURN, queue_name=TURN_QUEUE, broker=broker)
    def take_turn() -> None:
        with tracing.span("tally.slice"):
            seen.append("turn")

    with recorded_spans() as spans:
        with tracing.span("tally.submit") as submit:
            send_turns(broker, 2)
        worker = Worker(broker, worker_timeout=100)
        worker.start()
        try:
            broker.join(TURN_QUEUE)
            worker.join()
        finally:
            worker.stop()
        finished = spans.get_finished_spans()
    assert seen == ["turn"] * 2
    trace_id = submit.get_span_context().trace_id
    turns = named(finished, "tally.turn")
    assert len(turns) == 2
    for turn in turns:
        assert turn.kind is SpanKind.CONSUMER
        assert turn.context is not None and turn.context.trace_id == trace_id
        assert turn.parent is not None and turn.parent.span_id == submit.get_span_context().span_id
    turn_ids = {t.context.span_id for t in turns if t.context is not None}
    for slice_span in named(finished, "tally.slice"):
        assert slice_span.parent is not None and slice_span.parent.span_id in turn_ids


class Answering:
    """A provider that answers every call with one outcome."""

    name = "scripted"

    def __init__(self, answer: CreatedAccount | Exception) -> None:
        self.answer = answer

    async def create_account(self, idempotency_key: str) -> CreatedAccount:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    async def aclose(self) -> None:
        """Nothing to release."""


def test_provider_pushback_is_an_event_on_the_slice_span_without_secrets() -> None:
    pushback = ProviderPushback("429", WaitingReason.RATE_LIMITED, 2.0)

    async def calls() -> None:
        await TracedProvider(Answering(ACCOUNT)).create_account("job:0")
        with pytest.raises(ProviderPushback):
            await TracedProvider(Answering(pushback)).create_account("job:1")

    with recorded_spans() as spans:
        with tracing.span("tally.slice"):
            asyncio.run(calls())
        (slice_span,) = spans.get_finished_spans()
    (event,) = slice_span.events  # the created account is no event
    assert event.name == "provider.pushback"
    assert event.attributes is not None
    assert dict(event.attributes) == {
        "provider": "scripted",
        "idempotency_key": "job:1",
        "reason": "provider_rate_limited",
        "retry_after": 2.0,
    }
    assert "s3cret" not in slice_span.to_json() and "user-1" not in slice_span.to_json()


def test_json_logs_carry_trace_span_and_job_ids() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("tests.tracing")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with recorded_spans(), tracing.span("tally.slice") as span, log_context(job_id="j-1"):
            logger.warning("inside")
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    context = span.get_span_context()
    assert inside["trace_id"] == f"{context.trace_id:032x}"
    assert inside["span_id"] == f"{context.span_id:016x}"
    assert inside["job_id"] == "j-1"
    assert "trace_id" not in outside
