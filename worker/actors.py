"""The worker's actor: process one slice of a job, declared on the broker it is given."""

from __future__ import annotations

import logging
import uuid

import dramatiq

from core.slice_messages import PROCESS_SLICE, SLICE_QUEUE, slice_message
from worker import resources
from worker.processing import SliceContext, run_slice
from worker.turns import TurnPolicy, owed_turn

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
    if result.user_id is not None:
        send_owed_turn(context, resources.broker(), result.user_id)


def send_owed_turn(context: SliceContext, broker: dramatiq.Broker, user_id: uuid.UUID) -> None:
    """Send the user a turn when its limit may have made an earlier turn run nothing."""
    policy = TurnPolicy.from_settings(context.settings)
    owed = owed_turn(context.sessions, policy, user_id)
    if owed is None:
        return
    try:
        broker.enqueue(slice_message(*owed))
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
