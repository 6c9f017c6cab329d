"""Carrying a trace across the broker: a Dramatiq middleware.

Dramatiq ships no tracing, so the sender's trace context (W3C `traceparent`) travels in
the message's options, and the worker's turn continues that trace in a consumer span.
Retries and delayed re-sends keep the options, so they stay in the same trace. With
tracing off nothing is added to a message and nothing is started.
"""

from __future__ import annotations

import threading
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind

from core import tracing

OPTION = "trace_context"


class TraceContext(dramatiq.Middleware):
    """Injects the current trace into sent messages; a processed message runs in a span."""

    def __init__(self) -> None:
        self._current = threading.local()  # a worker thread processes one message at a time

    def before_enqueue(
        self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int
    ) -> None:
        """Put the sender's trace context into the message's options."""
        if not tracing.enabled():
            return
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        if carrier:
            message.options[OPTION] = carrier

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        """Start the turn's span as a child of the sender's context."""
        if not tracing.enabled():
            return
        parent = propagate.extract(message.options.get(OPTION) or {})
        turn = tracing.tracer().start_span(
            "tally.turn",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "dramatiq",
                "messaging.destination.name": message.queue_name,
                "messaging.message.id": message.message_id,
                "messaging.dramatiq.retries": int(message.options.get("retries", 0)),
            },
        )
        token = context.attach(trace.set_span_in_context(turn))
        self._current.turn = (turn, token)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        """End the turn's span (an error status when the actor raised)."""
        held = getattr(self._current, "turn", None)
        if held is None:
            return
        self._current.turn = None
        turn, token = held
        if exception is not None:
            tracing.mark_failed(turn, exception)
        turn.end()
        context.detach(token)

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        """A skipped message ends its span too."""
        self.after_process_message(broker, message)
