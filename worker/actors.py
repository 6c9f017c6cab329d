"""The worker's actor: take one turn, declared on the broker it is given."""

from __future__ import annotations

import logging

import dramatiq

from core.turn_messages import TAKE_TURN, TURN_QUEUE, send_turns
from worker import resources
from worker.processing import run_turn

logger = logging.getLogger(__name__)


def take_turn() -> None:
    """Serve the user at the front of the turn queue; safe to run any number of times."""
    result = run_turn(resources.current())
    for finished in result.finished_jobs:
        logger.info(
            "job %s %s: %d created, %d failed",
            finished.job_id,
            finished.status,
            finished.successful,
            finished.failures,
            extra={"job_id": finished.job_id, "user_id": finished.user_id},
        )
    if result.owed_turn:
        send_owed_turn(resources.broker())


def send_owed_turn(broker: dramatiq.Broker) -> None:
    """Send a turn owed to a user whose limit made an earlier turn run nothing."""
    try:
        send_turns(broker, 1)
    except Exception:
        logger.warning("could not send an owed turn; the sweep will", exc_info=True)


def declare_actors(broker: dramatiq.Broker) -> dramatiq.Actor[..., None]:
    """Register the turn actor with a broker (its name and queue are what senders use)."""
    declare = dramatiq.actor(
        actor_name=TAKE_TURN,
        queue_name=TURN_QUEUE,
        broker=broker,
        max_retries=20,
        min_backoff=500,
        max_backoff=15_000,
    )
    return declare(take_turn)
