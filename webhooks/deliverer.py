"""Attempts in flight: a thread pool, bounded in total and per endpoint.

A pass claims only as many deliveries as there are free threads, never more than
`per_endpoint` for one endpoint, and returns at once: a slow or dead endpoint occupies at
most its own share of threads for at most one timeout per attempt, and never the pass.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from core.crypto import SecretBox
from core.database import SessionFactory
from core.settings import WebhookOptions
from core.webhook_signing import signature
from webhooks import attempts
from webhooks.attempts import Claimed
from webhooks.transport import Answer, Transport

logger = logging.getLogger(__name__)
USER_AGENT = "tally-webhooks/1"


class Deliverer:
    """Claims due deliveries and attempts each on a thread of its own."""

    def __init__(self, sessions: SessionFactory, box: SecretBox, options: WebhookOptions) -> None:
        self._sessions = sessions
        self._box = box
        self._options = options
        self._transport = Transport(options.allow_private, options.timeout, options.concurrency)
        self._pool = ThreadPoolExecutor(options.concurrency, thread_name_prefix="webhook")
        self._in_flight: Counter[uuid.UUID] = Counter()
        self._lock = threading.Lock()

    def run_pass(self) -> int:
        """Start attempts for due deliveries while threads are free; return how many."""
        with self._lock:
            free = self._options.concurrency - sum(self._in_flight.values())
            in_flight = dict(self._in_flight)
        if free <= 0:
            return 0
        claimed = attempts.claim(self._sessions, self._box, self._options, free, in_flight)
        for delivery in claimed:
            with self._lock:
                self._in_flight[delivery.endpoint_id] += 1
            self._pool.submit(self._attempt, delivery)
        return len(claimed)

    def _attempt(self, delivery: Claimed) -> None:
        try:
            answer = self._post(delivery)
            attempts.record(self._sessions, self._options, delivery, answer)
        except Exception:
            logger.exception("webhook delivery %d could not be recorded", delivery.id)
        finally:
            with self._lock:
                self._in_flight[delivery.endpoint_id] -= 1
                if self._in_flight[delivery.endpoint_id] <= 0:
                    del self._in_flight[delivery.endpoint_id]

    def _post(self, delivery: Claimed) -> Answer:
        body = delivery.body.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Tally-Event-Id": delivery.event_id,
            "Tally-Signature": signature(delivery.secret, int(time.time()), body),
        }
        answer = self._transport.post(delivery.url, headers, body)
        if not answer.delivered:
            logger.info(
                "webhook delivery %d to endpoint %s failed: %s",
                delivery.id,
                delivery.endpoint_id,
                answer.error or f"HTTP {answer.status}",
            )
        return answer

    def close(self) -> None:
        """Wait for attempts in flight, then close connections."""
        self._pool.shutdown(wait=True)
        self._transport.close()
