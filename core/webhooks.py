"""Webhook endpoints a user registers, their delivery log, a test delivery and a replay.

An endpoint's signing secret is generated here, stored encrypted (the vault's Fernet key)
and answered once, when the endpoint is made.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from core.crypto import SecretBox
from core.database import SessionFactory
from core.errors import InvalidInput, NotFound
from core.schema import WebhookDelivery, WebhookEndpoint
from core.webhook_signing import new_secret

MAX_ENDPOINTS_PER_USER = 10


@dataclass(frozen=True)
class EndpointView:
    """An endpoint as its user sees it; `secret` only in the answer that made it."""

    id: uuid.UUID
    url: str
    created_at: datetime
    failing_since: datetime | None
    secret: str | None = None


@dataclass(frozen=True)
class DeliveryView:
    """One delivery of one event to one endpoint."""

    id: int
    event_id: str
    origin: str
    status: str
    attempts: int
    response_status: int | None
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    finished_at: datetime | None


def create_endpoint(
    sessions: SessionFactory, box: SecretBox, user_id: uuid.UUID, url: str
) -> EndpointView:
    """Register an endpoint (the URL already checked) with a new secret, shown once."""
    secret = new_secret()
    with sessions() as session, session.begin():
        count = session.scalar(
            select(func.count()).where(
                WebhookEndpoint.user_id == user_id, WebhookEndpoint.deleted_at.is_(None)
            )
        )
        if (count or 0) >= MAX_ENDPOINTS_PER_USER:
            raise InvalidInput(f"at most {MAX_ENDPOINTS_PER_USER} endpoints per user", field="url")
        row = WebhookEndpoint(user_id=user_id, url=url, secret_encrypted=box.seal(secret))
        session.add(row)
        session.flush()
        session.refresh(row)
        return EndpointView(row.id, row.url, row.created_at, None, secret)


def list_endpoints(sessions: SessionFactory, user_id: uuid.UUID) -> list[EndpointView]:
    """The user's live endpoints, oldest first (never their secrets)."""
    query = (
        select(WebhookEndpoint)
        .where(WebhookEndpoint.user_id == user_id, WebhookEndpoint.deleted_at.is_(None))
        .order_by(WebhookEndpoint.created_at)
    )
    with sessions() as session, session.begin():
        return [
            EndpointView(r.id, r.url, r.created_at, r.failing_since) for r in session.scalars(query)
        ]


def delete_endpoint(sessions: SessionFactory, user_id: uuid.UUID, endpoint_id: uuid.UUID) -> None:
    """Stop delivering to an endpoint; its pending deliveries end as failed."""
    with sessions() as session, session.begin():
        _own(session, user_id, endpoint_id)
        session.execute(
            text("UPDATE webhook_endpoints SET deleted_at = now() WHERE id = :id"),
            {"id": endpoint_id},
        )
        session.execute(
            text(
                "UPDATE webhook_deliveries SET status = 'failed', finished_at = now(), "
                "last_error = 'endpoint deleted' WHERE endpoint_id = :id AND status = 'pending'"
            ),
            {"id": endpoint_id},
        )


def deliveries(
    sessions: SessionFactory,
    user_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    limit: int,
    before: int | None,
) -> list[DeliveryView]:
    """One page of an endpoint's delivery log, newest first, before delivery id `before`."""
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if before is not None:
        query = query.where(WebhookDelivery.id < before)
    query = query.order_by(WebhookDelivery.id.desc()).limit(limit)
    with sessions() as session, session.begin():
        _own(session, user_id, endpoint_id)
        return [_delivery(row) for row in session.scalars(query)]


def send_test(sessions: SessionFactory, user_id: uuid.UUID, endpoint_id: uuid.UUID) -> DeliveryView:
    """Queue a `webhook.test` event for an endpoint."""
    event_id = f"evt_{uuid.uuid4().hex}"
    body = json.dumps(
        {"id": event_id, "type": "webhook.test", "created": int(time.time()), "data": {}},
        separators=(",", ":"),
    )
    return _queue(sessions, user_id, endpoint_id, event_id, body, "test")


def replay(
    sessions: SessionFactory, user_id: uuid.UUID, endpoint_id: uuid.UUID, delivery_id: int
) -> DeliveryView:
    """Queue one delivered or failed event again, with its event id (receivers deduplicate)."""
    with sessions() as session, session.begin():
        _own(session, user_id, endpoint_id)
        found = session.scalar(
            select(WebhookDelivery).where(
                WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == endpoint_id
            )
        )
        if found is None:
            raise NotFound("no such delivery")
        event_id, body = found.event_id, found.body
    return _queue(sessions, user_id, endpoint_id, event_id, body, "replay")


def _queue(
    sessions: SessionFactory,
    user_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    event_id: str,
    body: str,
    origin: str,
) -> DeliveryView:
    with sessions() as session, session.begin():
        _own(session, user_id, endpoint_id)
        row = WebhookDelivery(
            endpoint_id=endpoint_id, user_id=user_id, event_id=event_id, body=body, origin=origin
        )
        session.add(row)
        session.flush()
        session.refresh(row)
        return _delivery(row)


def _own(session: Session, user_id: uuid.UUID, endpoint_id: uuid.UUID) -> None:
    owner = session.scalar(
        select(WebhookEndpoint.user_id).where(
            WebhookEndpoint.id == endpoint_id, WebhookEndpoint.deleted_at.is_(None)
        )
    )
    if owner != user_id:
        raise NotFound("no such webhook endpoint")


def _delivery(row: WebhookDelivery) -> DeliveryView:
    return DeliveryView(
        id=row.id,
        event_id=row.event_id,
        origin=row.origin,
        status=row.status,
        attempts=row.attempts,
        response_status=row.response_status,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )
