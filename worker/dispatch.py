"""Sending slice messages: used by the web process after submit and by the sweep."""

from __future__ import annotations

import uuid
from collections.abc import Iterable


def enqueue_slices(job_id: uuid.UUID, slice_indices: Iterable[int]) -> int:
    """Send one message per slice; return how many were sent."""
    from worker.actors import process_slice

    sent = 0
    for index in slice_indices:
        process_slice.send(str(job_id), index)
        sent += 1
    return sent
