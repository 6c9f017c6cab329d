"""From the outbox to deliveries: each terminal job, once per endpoint of its user.

The fan-out keeps its own position in the outbox (webhook_position), apart from the stats
apply, so neither holds the other back. Outbox ids are taken in insert order but committed
in any order, so a row with a smaller id may appear after a larger one was read: the
position only moves past rows older than HORIZON_SECONDS (longer than any transaction may
stay open), and the newer rows are read again on the next pass. Reading them again is
harmless: a delivery is unique per (endpoint, event id).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.database import SessionFactory
from core.vocabulary import Topic

POSITION = "webhooks"
HORIZON_SECONDS = 60.0
BATCH = 500
EVENT_NAMESPACE = uuid.UUID("5c7e2f0a-6a53-4c55-9a3e-2f8d3b0f6a11")

READ = text(
    "SELECT o.id, o.user_id, o.payload, o.created_at, "
    "o.created_at < now() - make_interval(secs => :horizon) AS settled, "
    "j.status, j.finished_at "
    "FROM outbox o JOIN jobs j ON j.id = CAST(o.payload ->> 'job_id' AS uuid) "
    "WHERE o.id > :position AND o.topic = :topic ORDER BY o.id LIMIT :batch"
)
INSERT = text(
    "INSERT INTO webhook_deliveries (endpoint_id, user_id, event_id, body) "
    "SELECT e.id, e.user_id, :event_id, :body FROM webhook_endpoints e "
    "WHERE e.user_id = :user_id AND e.deleted_at IS NULL AND e.created_at <= :created_at "
    "ON CONFLICT (endpoint_id, event_id) WHERE origin = 'event' DO NOTHING"
)


def fan_out(sessions: SessionFactory, batch: int = BATCH) -> int:
    """Read one batch of terminal jobs past the position into deliveries.

    Returns the rows read when the position moved (0 when it did not), so a caller reads
    again while whole batches go by.
    """
    with sessions() as session, session.begin():
        position = _position(session)
        rows = session.execute(
            READ,
            {
                "position": position,
                "topic": Topic.JOB_COMPLETED.value,
                "horizon": HORIZON_SECONDS,
                "batch": batch,
            },
        ).all()
        settled, contiguous = position, True
        for row in rows:
            event_id, body = event_of(row)
            session.execute(
                INSERT,
                {
                    "event_id": event_id,
                    "body": body,
                    "user_id": row.user_id,
                    "created_at": row.created_at,
                },
            )
            contiguous = contiguous and bool(row.settled)
            if contiguous:
                settled = row.id
        if settled != position:
            session.execute(
                text("UPDATE webhook_position SET outbox_id = :id WHERE name = :name"),
                {"id": settled, "name": POSITION},
            )
        return len(rows) if settled != position else 0


def event_of(row: Any) -> tuple[str, str]:
    """The event id and JSON body announcing one terminal job."""
    payload = row.payload
    event_id = "evt_" + uuid.uuid5(EVENT_NAMESPACE, payload["job_id"]).hex
    job = {
        "id": payload["job_id"],
        "status": row.status,
        "requested": payload["requested"],
        "successful": payload["successful"],
        "failures": payload["failures"],
        "cancelled": payload.get("cancelled", 0),
        "finished_at": None if row.finished_at is None else row.finished_at.isoformat(),
    }
    body = {
        "id": event_id,
        "type": f"job.{row.status}",
        "created": int(row.created_at.timestamp()),
        "data": {"job": job},
    }
    return event_id, json.dumps(body, separators=(",", ":"))


def _position(session: Session) -> int:
    session.execute(
        text(
            "INSERT INTO webhook_position (name, outbox_id) VALUES (:name, 0) "
            "ON CONFLICT (name) DO NOTHING"
        ),
        {"name": POSITION},
    )
    found = session.execute(
        text("SELECT outbox_id FROM webhook_position WHERE name = :name FOR UPDATE"),
        {"name": POSITION},
    ).scalar_one()
    return int(found)
