"""Keyset pages of one job's accounts or one user's vault: each page costs the same anywhere.

A job's accounts are read in item order through the (job_id, item_index) unique index; a
vault in (created_at, id) order through the live-vault keyset index. Neither counts rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, tuple_

from core.database import SessionFactory
from core.errors import NotFound
from core.export_cursor import Position, Scope
from core.schema import Job, UserAccount


@dataclass(frozen=True)
class AccountRow:
    """One account as an export or a job's listing reads it; the secret still sealed."""

    id: uuid.UUID
    job_id: uuid.UUID
    item_index: int
    provider: str
    external_id: str
    username: str
    metadata: dict[str, Any]
    created_at: datetime
    secret_encrypted: bytes

    def position(self, scope: Scope) -> Position:
        """The cursor position just after this row within `scope`."""
        if scope.job_id is not None:
            return Position(item_index=self.item_index)
        return Position(created_at=self.created_at, account_id=self.id)


COLUMNS = (
    UserAccount.id,
    UserAccount.job_id,
    UserAccount.item_index,
    UserAccount.provider,
    UserAccount.external_id,
    UserAccount.username,
    UserAccount.metadata_,
    UserAccount.created_at,
    UserAccount.secret_encrypted,
)


def check_scope(sessions: SessionFactory, scope: Scope) -> None:
    """Raise NotFound when the scope names a job that is not the user's."""
    if scope.job_id is None:
        return
    with sessions() as session, session.begin():
        owner = session.scalar(select(Job.user_id).where(Job.id == scope.job_id))
    if owner != scope.user_id:
        raise NotFound("no such job")


def page_after(
    sessions: SessionFactory, scope: Scope, after: Position, limit: int
) -> list[AccountRow]:
    """The next `limit` live accounts of the scope after `after`, in keyset order."""
    with sessions() as session, session.begin():
        rows = session.execute(_query(scope, after, limit)).all()
    return [AccountRow(*row) for row in rows]


def _query(scope: Scope, after: Position, limit: int) -> Select[Any]:
    query = select(*COLUMNS).where(
        UserAccount.user_id == scope.user_id, UserAccount.deleted_at.is_(None)
    )
    if scope.job_id is not None:
        query = query.where(
            UserAccount.job_id == scope.job_id, UserAccount.item_index > after.item_index
        )
        return query.order_by(UserAccount.item_index).limit(limit)
    if after.created_at is not None:
        query = query.where(
            tuple_(UserAccount.created_at, UserAccount.id) > (after.created_at, after.account_id)
        )
    return query.order_by(UserAccount.created_at, UserAccount.id).limit(limit)
