"""OpenTelemetry traces, set up once at a process's entry point from the standard OTEL_* variables.

Tracing is on when an OTLP endpoint is given (OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or OTEL_TRACES_EXPORTER names an exporter, and
OTEL_SDK_DISABLED is not true. Then the SDK (imported only then) exports batches of spans
over OTLP/HTTP; everything else (service name, resource attributes, sampler, batch delays,
headers) is the SDK's own reading of its variables. With none of them set the SDK is never
imported, the API's no-op tracer answers, and the helpers below return at once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from core.errors import ConfigurationError

Exporter = Literal["otlp", "console", "none"]
EXPORTERS: tuple[Exporter, ...] = ("otlp", "console", "none")
ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
Attributes = Mapping[str, AttributeValue]


class _Tracing:
    """This process's tracer: the API's no-op one until a provider is installed."""

    enabled = False
    tracer: trace.Tracer = trace.NoOpTracer()


_state = _Tracing()


@dataclass(frozen=True)
class TracingConfig:
    """Which exporter the OTEL_* variables ask for ("none": tracing off)."""

    exporter: Exporter = "none"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TracingConfig:
        """Read the standard variables; refuse an exporter tally does not ship."""
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return cls()
        named = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
        if named and named not in EXPORTERS:
            raise ConfigurationError(
                f"OTEL_TRACES_EXPORTER must be one of {', '.join(EXPORTERS)} (got {named!r})"
            )
        if named:
            return cls(next(e for e in EXPORTERS if e == named))
        return cls("otlp" if any(env.get(name, "").strip() for name in ENDPOINTS) else "none")

    @property
    def enabled(self) -> bool:
        """Whether spans are recorded and exported."""
        return self.exporter != "none"


def configure_tracing(service: str, config: TracingConfig) -> bool:
    """Install the SDK's tracer provider for this process when asked; return whether it did."""
    if not config.enabled:
        return False
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    detected = OTELResourceDetector().detect()  # type: ignore[no-untyped-call]
    named = detected.attributes.get("service.name")
    resource = Resource.create({"service.name": named or f"tally-{service}"})
    provider = TracerProvider(resource=resource)
    exporter: SpanExporter
    if config.exporter == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)  # provider calls: client spans
    use_provider(provider)
    return True


def use_provider(provider: trace.TracerProvider | None) -> None:
    """Record spans through this provider from now on (None: stop; tests install their own)."""
    _state.enabled = provider is not None
    _state.tracer = trace.NoOpTracer() if provider is None else provider.get_tracer("tally")


def enabled() -> bool:
    """Whether this process records spans (set once by configure_tracing)."""
    return _state.enabled


def tracer() -> trace.Tracer:
    """The process's tracer (a no-op one while tracing is off)."""
    return _state.tracer


@contextlib.contextmanager
def span(
    name: str, attributes: Attributes | None = None, kind: SpanKind = SpanKind.INTERNAL
) -> Iterator[Span]:
    """A span around the block, current inside it; a shared no-op span when tracing is off."""
    if not _state.enabled:
        yield trace.INVALID_SPAN
        return
    with _state.tracer.start_as_current_span(name, kind=kind, attributes=attributes) as current:
        yield current


def event(name: str, attributes: Attributes | None = None) -> None:
    """Add an event to the current span (nothing when tracing is off)."""
    if _state.enabled:
        trace.get_current_span().add_event(name, attributes)


def record_span(
    name: str, started_ns: int, attributes: Attributes, links: Sequence[str] = ()
) -> None:
    """Record a span that began at `started_ns` (time.time_ns()) and ends now, linked to the
    spans whose W3C traceparents are given."""
    if _state.enabled:
        linked = [Link(c) for c in map(_span_context, links) if c is not None]
        done = _state.tracer.start_span(
            name, start_time=started_ns, attributes=attributes, links=linked
        )
        done.end(time.time_ns())


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, or None (tracing off, or no span)."""
    if not _state.enabled:
        return None
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")


def _span_context(traceparent: str) -> SpanContext | None:
    found = trace.get_current_span(
        TraceContextTextMapPropagator().extract({"traceparent": traceparent})
    ).get_span_context()
    return found if found.is_valid else None


def mark_failed(current: Span, error: BaseException) -> None:
    """Record an exception on a span and set its status to error."""
    current.record_exception(error)
    current.set_status(Status(StatusCode.ERROR, type(error).__name__))
