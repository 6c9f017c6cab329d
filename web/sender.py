"""Sending turn messages off the request path: one thread per web process, a bounded queue.

A submit commits its job before anything is sent (its turn), and the sweep sends turns
when the queue has work and no turn was taken. So a
request only hands its job to this queue and answers: a slow, hung or absent broker costs
this thread time, never a request. A send that fails, that waited longer than the sweep
would, or that finds the queue full is dropped with a warning; the sweep sends it instead.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from opentelemetry import context

logger = logging.getLogger(__name__)

Enqueue = Callable[[int], int]  # sends that many turn messages

# Jobs waiting to be sent, per web process; beyond it a submit leaves its job to the sweep.
CAPACITY = 1000


@dataclass(frozen=True)
class Send:
    """A submitted job's turn messages, waiting to be sent."""

    job_id: uuid.UUID
    user_id: uuid.UUID
    turns: int
    queued_at: float = field(default_factory=time.monotonic)
    trace: context.Context = field(default_factory=context.get_current)  # the submit's span


class TurnSender:
    """A background thread that sends each submitted job's turns, oldest first."""

    def __init__(self, enqueue: Enqueue, expiry: float, capacity: int = CAPACITY) -> None:
        self._enqueue = enqueue
        self._expiry = expiry
        self._capacity = capacity
        self._waiting: deque[Send] = deque()
        self._busy = False
        self._stopping = False
        self._full = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="tally-turn-sender", daemon=True)

    def start(self) -> None:
        """Start the sending thread."""
        self._thread.start()

    def offer(self, job_id: uuid.UUID, user_id: uuid.UUID, turns: int) -> bool:
        """Queue a job's messages without waiting; False when the queue is full or stopped."""
        with self._changed:
            accepted = not self._stopping and len(self._waiting) < self._capacity
            if accepted:
                self._waiting.append(Send(job_id, user_id, turns))
                self._changed.notify_all()
            first_refusal, self._full = not accepted and not self._full, not accepted
        if first_refusal:
            _warn("the send queue is full; the sweep will send job %s", job_id, user_id)
        return accepted

    def idle(self) -> bool:
        """Whether every job offered so far has been sent or dropped."""
        with self._changed:
            return not self._waiting and not self._busy

    def stop(self, timeout: float) -> None:
        """Drop what still waits (the sweep sends it) and wait up to `timeout` for the thread."""
        with self._changed:
            self._stopping = True
            dropped = len(self._waiting)
            self._waiting.clear()
            self._changed.notify_all()
        if dropped:
            logger.warning("%d jobs not sent at shutdown; the sweep will send them", dropped)
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("a turn send was still waiting on the broker at shutdown")

    def _run(self) -> None:
        while (send := self._next()) is not None:
            self._send(send)

    def _next(self) -> Send | None:
        """Wait for the next job to send; None once stopping."""
        with self._changed:
            self._busy = False
            self._changed.notify_all()
            while not self._waiting and not self._stopping:
                self._changed.wait()
            if self._stopping:
                return None
            self._busy = True
            return self._waiting.popleft()

    def _send(self, send: Send) -> None:
        if time.monotonic() - send.queued_at > self._expiry:
            _warn("job %s waited too long to be sent; the sweep will", send.job_id, send.user_id)
            return
        token = context.attach(send.trace)
        try:
            self._enqueue(send.turns)
        except Exception:
            _warn("could not enqueue job %s; the sweep will", send.job_id, send.user_id, True)
        finally:
            context.detach(token)


def _warn(message: str, job_id: uuid.UUID, user_id: uuid.UUID, exc_info: bool = False) -> None:
    """Log a dropped send with the job's ids."""
    logger.warning(message, job_id, exc_info=exc_info, extra={"job_id": job_id, "user_id": user_id})
