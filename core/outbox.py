"""Writing an outbox row inside the caller's transaction, announced to the appliers at commit."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core import tracing
from core.schema import Outbox
from core.vocabulary import Topic

# Reconcile daemons LISTEN here and apply at once; PostgreSQL sends the notification only
# when the transaction commits, and once per transaction however many rows it wrote.
OUTBOX_CHANNEL = "tally_outbox"


def add(
    session: Session, topic: Topic, key: str, user_id: uuid.UUID, payload: dict[str, Any]
) -> bool:
    """Record an event once per (topic, key); commit happens with the caller's transaction.

    The same statement notifies OUTBOX_CHANNEL for a row it inserted (no extra round trip).
    """
    values: dict[str, Any] = {"topic": topic, "key": key, "user_id": user_id, "payload": payload}
    traceparent = tracing.current_traceparent()
    if traceparent is not None:  # the apply's span links back to this trace
        values["trace_context"] = traceparent
    inserted = session.execute(
        insert(Outbox)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["topic", "key"])
        .returning(Outbox.id, func.pg_notify(OUTBOX_CHANNEL, ""))
    ).first()
    return inserted is not None
