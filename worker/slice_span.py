"""The spans of a turn's slices: job, user, provider and items, never a secret.

A turn runs its slices' provider calls at once, so each slice has a span of its own, a
sibling under the turn's span, made current only while its calls are started (the calls'
tasks keep that context) and ended when the turn's calls are done.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span

from core import tracing
from worker.slices import SliceClaim


def attributes_of(claim: SliceClaim) -> tracing.Attributes:
    """What a slice's span says: ids, provider, index, attempt and size."""
    return {
        "job.id": str(claim.job_id),
        "user.id": str(claim.user_id),
        "provider": claim.provider,
        "slice.index": claim.slice_index,
        "slice.attempt": claim.attempt,
        "slice.items": claim.stop_index - claim.start_index,
    }


@contextlib.contextmanager
def slice_spans(claims: Sequence[SliceClaim]) -> Iterator[list[Span]]:
    """A `tally.slice` span per claim (children of the current span), ended on exit."""
    if not tracing.enabled():
        yield [INVALID_SPAN] * len(claims)
        return
    spans = [
        tracing.tracer().start_span("tally.slice", attributes=attributes_of(c)) for c in claims
    ]
    try:
        yield spans
    finally:
        for span in spans:
            span.end()


@contextlib.contextmanager
def used(span: Span) -> Iterator[None]:
    """Make `span` current inside the block without ending it."""
    with trace.use_span(span, end_on_exit=False):
        yield
