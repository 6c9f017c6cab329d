"""The span of one claimed slice: its job, user, provider and items, never a secret."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.trace import INVALID_SPAN, Span

from core import tracing
from worker.slices import SliceClaim


@contextmanager
def slice_span(claim: SliceClaim) -> Iterator[Span]:
    """A `tally.slice` span around the block (the turn's child when tracing is on)."""
    if not tracing.enabled():
        yield INVALID_SPAN
        return
    attributes: tracing.Attributes = {
        "job.id": str(claim.job_id),
        "user.id": str(claim.user_id),
        "provider": claim.provider,
        "slice.index": claim.slice_index,
        "slice.attempt": claim.attempt,
        "slice.items": claim.stop_index - claim.start_index,
    }
    with tracing.span("tally.slice", attributes) as current:
        yield current
