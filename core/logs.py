"""Logging setup: plain text, or one JSON object per line when TALLY_LOG_FORMAT=json.

Records carry `job_id`, `user_id` and `slice_index` when the code that logs passes them
(`extra=`) or runs inside `log_context(...)`, and `trace_id`/`span_id` when logged inside
a recording span (core/tracing.py), so a log line finds its trace. Bearer tokens are
scrubbed from every message before it is written, whatever its origin (an access log
line, an exception).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

from opentelemetry import trace

CONTEXT_FIELDS = ("job_id", "user_id", "slice_index", "trace_id", "span_id")
# Loggers that libraries configure with handlers of their own; they are sent to ours.
LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "dramatiq", "apscheduler")
TOKEN_PATTERN = re.compile(r"(tly_[A-Za-z0-9_\-]{8,})|((?i:bearer)\s+[A-Za-z0-9._~+/=\-]{8,})")
REDACTED = "[redacted]"

_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "tally_log_context", default=None
)


@contextlib.contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Attach fields (job_id, user_id, ...) to every record logged inside the block."""
    merged = {**(_context.get() or {}), **{k: str(v) for k, v in fields.items()}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def redact(text: str) -> str:
    """Replace anything that looks like a bearer token."""
    return TOKEN_PATTERN.sub(REDACTED, text)


class ContextFilter(logging.Filter):
    """Copies the current log_context onto records that do not carry the fields already."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add context fields; never drops a record."""
        for name, value in (_context.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        span = trace.get_current_span().get_span_context()
        if span.is_valid and not hasattr(record, "trace_id"):
            record.trace_id = trace.format_trace_id(span.trace_id)
            record.span_id = trace.format_span_id(span.span_id)
        return True


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object, carrying job and user ids when given."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            if hasattr(record, name):
                entry[name] = str(getattr(record, name))
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry)


class TextFormatter(logging.Formatter):
    """The plain format, with context fields appended and tokens scrubbed."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as text."""
        text = super().format(record)
        fields = [f"{n}={getattr(record, n)}" for n in CONTEXT_FIELDS if hasattr(record, n)]
        return redact(f"{text} [{' '.join(fields)}]" if fields else text)


def configure_logging(log_format: str = "text", level: int = logging.INFO) -> None:
    """Send every log record, libraries' included, to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        if library.handlers:  # configured by the library itself (a silenced one has none)
            library.handlers[:] = []
            library.propagate = True
