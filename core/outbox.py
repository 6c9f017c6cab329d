"""Writing an outbox row inside the caller's transaction."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core import tracing
from core.schema import Outbox
from core.vocabulary import Topic


def add(
    session: Session, topic: Topic, key: str, user_id: uuid.UUID, payload: dict[str, Any]
) -> bool:
    """Record an event once per (topic, key); commit happens with the caller's transaction."""
    values: dict[str, Any] = {"topic": topic, "key": key, "user_id": user_id, "payload": payload}
    traceparent = tracing.current_traceparent()
    if traceparent is not None:  # the apply's span links back to this trace
        values["trace_context"] = traceparent
    inserted = session.execute(
        insert(Outbox)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["topic", "key"])
        .returning(Outbox.id)
    ).first()
    return inserted is not None
