"""The worker's actor: process one slice of a job, declared on the broker it is given."""

from __future__ import annotations

import logging
import uuid

import dramatiq

from core.turn_messages import PROCESS_SLICE, SLICE_QUEUE, slice_message
from worker import resources
from worker.processing import run_slice

logger = logging.getLogger(__name__)


def process_slice(job_id: str, slice_index: int) -> None:
    """Take one turn (the slice named is the one it was sent for); safe to run any number
    of times."""
    context = resources.current()
    result = run_slice(context, uuid.UUID(job_id), slice_index)
    if result.finished is not None:
        logger.info(
            "job %s %s: %d created, %d failed",
            result.finished.job_id,
            result.finished.status,
            result.finished.successful,
            result.finished.failures,
            extra={"job_id": result.finished.job_id, "user_id": result.finished.user_id},
        )
    if result.owed_turn is not None:
        send_owed_turn(resources.broker(), *result.owed_turn)


def send_owed_turn(broker: dramatiq.Broker, job_id: uuid.UUID, slice_index: int) -> None:
    """Send a turn owed to a user whose limit made an earlier turn run nothing."""
    try:
        broker.enqueue(slice_message(job_id, slice_index))
    except Exception:
        logger.warning("could not send an owed turn; the sweep will", exc_info=True)


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
