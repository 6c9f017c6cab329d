"""Slice messages: what the web process and the sweep send, and the worker's actor receives.

Sending needs only a broker and the actor's name, never the worker's code.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import dramatiq

SLICE_QUEUE = "slices"
PROCESS_SLICE = "process_slice"


def slice_message(job_id: uuid.UUID, slice_index: int) -> dramatiq.Message[None]:
    """The message that asks a worker to process one slice of a job."""
    return dramatiq.Message(
        queue_name=SLICE_QUEUE,
        actor_name=PROCESS_SLICE,
        args=(str(job_id), slice_index),
        kwargs={},
        options={},
    )


def send_slices(broker: dramatiq.Broker, job_id: uuid.UUID, slice_indices: Iterable[int]) -> int:
    """Send one message per slice; return how many were sent."""
    sent = 0
    for index in slice_indices:
        broker.enqueue(slice_message(job_id, index))
        sent += 1
    return sent
