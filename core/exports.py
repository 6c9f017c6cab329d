"""Export records: who exported what, when, how many accounts, with or without secrets.

A user runs one export at a time: `running` is unique per user (a partial unique index).
A running export refreshes `seen_at` with every page it sends, so one whose process died
is taken over (marked `interrupted`) once it has been silent for the lease.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select, text, tuple_
from sqlalchemy.exc import IntegrityError

from core.database import SessionFactory
from core.errors import Conflict
from core.export_cursor import Scope
from core.schema import Export

Format = Literal["csv", "ndjson"]
Ending = Literal["done", "interrupted"]
LEASE_SECONDS = 60.0


@dataclass(frozen=True)
class ExportRecord:
    """One export as its user sees it."""

    id: uuid.UUID
    job_id: uuid.UUID | None
    format: str
    secrets: bool
    status: str
    accounts: int
    resumed: bool
    started_at: datetime
    finished_at: datetime | None


def start(
    sessions: SessionFactory, scope: Scope, format: Format, secrets: bool, resumed: bool
) -> uuid.UUID:
    """Record a running export, or raise Conflict while another export of the user runs."""
    try:
        with sessions() as session, session.begin():
            session.execute(
                text(
                    "UPDATE exports SET status = 'interrupted', finished_at = seen_at "
                    "WHERE user_id = :user_id AND status = 'running' "
                    "AND seen_at < now() - make_interval(secs => :lease)"
                ),
                {"user_id": scope.user_id, "lease": LEASE_SECONDS},
            )
            export = Export(
                user_id=scope.user_id,
                job_id=scope.job_id,
                format=format,
                secrets=secrets,
                resumed=resumed,
            )
            session.add(export)
            session.flush()
            return export.id
    except IntegrityError as exc:
        raise Conflict("another export of yours is running; try again when it ends") from exc


def progress(sessions: SessionFactory, export_id: uuid.UUID, added: int) -> None:
    """Count `added` more accounts sent and renew the export's lease."""
    with sessions() as session, session.begin():
        session.execute(
            text(
                "UPDATE exports SET accounts = accounts + :added, seen_at = now() "
                "WHERE id = :id AND status = 'running'"
            ),
            {"added": added, "id": export_id},
        )


def finish(sessions: SessionFactory, export_id: uuid.UUID, ending: Ending) -> None:
    """End a running export: every page sent (`done`) or the stream cut (`interrupted`)."""
    with sessions() as session, session.begin():
        session.execute(
            text(
                "UPDATE exports SET status = :ending, finished_at = now(), seen_at = now() "
                "WHERE id = :id AND status = 'running'"
            ),
            {"ending": ending, "id": export_id},
        )


def list_exports(
    sessions: SessionFactory, user_id: uuid.UUID, limit: int, before: ExportRecord | None = None
) -> list[ExportRecord]:
    """The user's exports, newest first, `limit` at a time after `before`."""
    query = select(Export).where(Export.user_id == user_id)
    if before is not None:
        query = query.where(tuple_(Export.started_at, Export.id) < (before.started_at, before.id))
    query = query.order_by(Export.started_at.desc(), Export.id.desc()).limit(limit)
    with sessions() as session, session.begin():
        return [_record(row) for row in session.scalars(query)]


def _record(row: Export) -> ExportRecord:
    return ExportRecord(
        id=row.id,
        job_id=row.job_id,
        format=row.format,
        secrets=row.secrets,
        status=row.status,
        accounts=row.accounts,
        resumed=row.resumed,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )
