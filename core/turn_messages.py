"""Turn messages: what the web process, the sweep and a worker send to ask for a turn.

A turn message names no job or slice: the worker that takes it serves the user at the
front of the turn queue (core/turn_queue.py). Sending needs only a broker and the actor's
name, never the worker's code.
"""

from __future__ import annotations

import dramatiq

TURN_QUEUE = "turns"
TAKE_TURN = "take_turn"


def turn_message() -> dramatiq.Message[None]:
    """The message that asks a worker to take one turn."""
    return dramatiq.Message(
        queue_name=TURN_QUEUE, actor_name=TAKE_TURN, args=(), kwargs={}, options={}
    )


def send_turns(broker: dramatiq.Broker, count: int, delay_ms: int | None = None) -> int:
    """Send `count` turn messages (after `delay_ms`, if given); return how many were sent."""
    for _ in range(count):
        broker.enqueue(turn_message(), delay=delay_ms)
    return max(count, 0)
