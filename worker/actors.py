"""The worker's actor: process one slice of a job, declared on the broker it is given."""

from __future__ import annotations

import logging
import uuid

import dramatiq

from core.logs import log_context
from core.slice_messages import PROCESS_SLICE, SLICE_QUEUE
from worker import resources
from worker.processing import run_slice

logger = logging.getLogger(__name__)


def process_slice(job_id: str, slice_index: int) -> None:
    """Process one slice of a job; safe to run any number of times."""
    with log_context(job_id=job_id, slice_index=slice_index):
        result = run_slice(resources.current(), uuid.UUID(job_id), slice_index)
        if result.finished is not None:
            logger.info(
                "job %s %s: %d created, %d failed",
                job_id,
                result.finished.status,
                result.finished.successful,
                result.finished.failures,
                extra={"user_id": result.finished.user_id},
            )


def declare_actors(broker: dramatiq.Broker) -> dramatiq.Actor[..., None]:
    """Register the slice actor with a broker (its name and queue are what senders use)."""
    declare = dramatiq.actor(
        actor_name=PROCESS_SLICE,
        queue_name=SLICE_QUEUE,
        broker=broker,
        max_retries=20,
        min_backoff=500,
        max_backoff=15_000,
    )
    return declare(process_slice)
