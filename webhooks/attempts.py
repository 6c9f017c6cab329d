"""Claiming due deliveries and recording each attempt's outcome.

A claim pushes the delivery's next attempt past the attempt's longest duration, so a
daemon that dies mid-attempt leaves it to be claimed again then (at least once). A failed
attempt waits `backoff * 2^(attempts-1)` (capped, with jitter) and the endpoint's other
pending deliveries wait at least as long, so a dead endpoint is asked once per backoff
rather than once per event. A delivery failing for longer than `give_up` ends as failed and
marks its endpoint failing; a success clears that mark.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, text

from core.crypto import SecretBox
from core.database import SessionFactory
from core.settings import WebhookOptions
from webhooks.transport import MAX_REDIRECTS, Answer

CLAIM = text(
    "WITH due AS ("
    "  SELECT d.id FROM webhook_deliveries d"
    "  WHERE d.status = 'pending' AND d.next_attempt_at <= now()"
    "  AND NOT (d.endpoint_id = ANY(CAST(:busy AS uuid[])))"
    "  ORDER BY d.next_attempt_at LIMIT :window FOR UPDATE SKIP LOCKED"
    ") SELECT d.id, d.endpoint_id, d.event_id, d.body, e.url, e.secret_encrypted "
    "FROM webhook_deliveries d JOIN due ON due.id = d.id "
    "JOIN webhook_endpoints e ON e.id = d.endpoint_id ORDER BY d.next_attempt_at"
)
TAKE = text(
    "UPDATE webhook_deliveries SET attempts = attempts + 1, "
    "next_attempt_at = now() + make_interval(secs => :lease) WHERE id = ANY(:ids)"
)


@dataclass(frozen=True)
class Claimed:
    """A delivery this process attempts now."""

    id: int
    endpoint_id: uuid.UUID
    event_id: str
    body: str
    url: str
    secret: str


def claim(
    sessions: SessionFactory,
    box: SecretBox,
    options: WebhookOptions,
    free: int,
    in_flight: dict[uuid.UUID, int],
) -> list[Claimed]:
    """Take up to `free` due deliveries, at most `per_endpoint` in flight per endpoint."""
    busy = [e for e, n in in_flight.items() if n >= options.per_endpoint]
    with sessions() as session, session.begin():
        rows = session.execute(CLAIM, {"busy": busy, "window": free * 4}).all()
        taken = _pick(rows, free, in_flight, options.per_endpoint)
        if taken:
            # An attempt lasts at most a connect, a write and a read per hop, redirects too.
            lease = 3 * options.timeout * (MAX_REDIRECTS + 1) + 5
            session.execute(TAKE, {"ids": [r.id for r in taken], "lease": lease})
    return [
        Claimed(r.id, r.endpoint_id, r.event_id, r.body, r.url, box.open(bytes(r.secret_encrypted)))
        for r in taken
    ]


def _pick(
    rows: Sequence[Row[Any]], free: int, in_flight: dict[uuid.UUID, int], limit: int
) -> list[Row[Any]]:
    counts = dict(in_flight)
    picked: list[Row[Any]] = []
    for row in rows:
        endpoint = row.endpoint_id
        if len(picked) < free and counts.get(endpoint, 0) < limit:
            counts[endpoint] = counts.get(endpoint, 0) + 1
            picked.append(row)
    return picked


def record(
    sessions: SessionFactory, options: WebhookOptions, delivery: Claimed, answer: Answer
) -> None:
    """Store one attempt's outcome: delivered, retried later, or given up."""
    with sessions() as session, session.begin():
        if answer.delivered:
            session.execute(
                text(
                    "UPDATE webhook_deliveries SET status = 'delivered', finished_at = now(), "
                    "response_status = :status, last_error = NULL WHERE id = :id "
                    "AND status = 'pending'"
                ),
                {"status": answer.status, "id": delivery.id},
            )
            session.execute(
                text("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = :id"),
                {"id": delivery.endpoint_id},
            )
            return
        row = session.execute(
            text(
                "UPDATE webhook_deliveries SET response_status = :status, last_error = :error, "
                "status = CASE WHEN created_at < now() - make_interval(secs => :give_up) "
                "THEN 'failed' ELSE status END, "
                "finished_at = CASE WHEN created_at < now() - make_interval(secs => :give_up) "
                "THEN now() END "
                "WHERE id = :id AND status = 'pending' RETURNING status, attempts"
            ),
            {
                "status": answer.status,
                "error": answer.error or f"HTTP {answer.status}",
                "give_up": options.give_up,
                "id": delivery.id,
            },
        ).first()
        if row is None:
            return
        if row.status == "failed":
            session.execute(
                text(
                    "UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, now()) "
                    "WHERE id = :id"
                ),
                {"id": delivery.endpoint_id},
            )
            return
        session.execute(
            text(
                "UPDATE webhook_deliveries SET next_attempt_at = CASE WHEN id = :id "
                "THEN now() + make_interval(secs => :wait) ELSE greatest(next_attempt_at, "
                "now() + make_interval(secs => :wait)) END "
                "WHERE endpoint_id = :endpoint AND status = 'pending' "
                "AND (id = :id OR next_attempt_at <= now() + make_interval(secs => :wait))"
            ),
            {
                "wait": delay(options, row.attempts),
                "endpoint": delivery.endpoint_id,
                "id": delivery.id,
            },
        )


def delay(options: WebhookOptions, attempts: int) -> float:
    """Seconds before the next attempt after `attempts` failed ones (full jitter on half)."""
    ceiling = min(options.backoff_max, options.backoff * 2 ** min(attempts - 1, 30))
    return float(ceiling / 2 + random.uniform(0, ceiling / 2))
