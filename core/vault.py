"""The vault: the accounts a user owns, listed without secrets."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text

from core import outbox
from core.crypto import SecretBox
from core.database import SessionFactory
from core.errors import NotFound
from core.pages import fetch_page
from core.schema import UserAccount
from core.vocabulary import Topic


@dataclass(frozen=True)
class AccountView:
    """One vault account as its owner sees it in lists (no secret)."""

    id: uuid.UUID
    job_id: uuid.UUID
    item_index: int
    provider: str
    external_id: str
    username: str
    metadata: dict[str, Any]
    created_at: datetime


def _live(user_id: uuid.UUID) -> Any:
    return (UserAccount.user_id == user_id) & UserAccount.deleted_at.is_(None)


def list_accounts(
    sessions: SessionFactory, user_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[AccountView], int]:
    """Return one page of the caller's live accounts, newest first, and their total."""
    order = [UserAccount.created_at.desc(), UserAccount.id]
    with sessions() as session, session.begin():
        found, total = fetch_page(session, UserAccount, _live(user_id), order, limit, offset)
        return [_view(r) for r in found], total


def delete_account(sessions: SessionFactory, user_id: uuid.UUID, account_id: uuid.UUID) -> None:
    """Remove an account from the caller's vault and record vault.removed, together."""
    with sessions() as session, session.begin():
        removed = session.execute(
            text(
                "UPDATE user_accounts SET deleted_at = now() "
                "WHERE id = :id AND user_id = :user_id AND deleted_at IS NULL RETURNING id"
            ),
            {"id": account_id, "user_id": user_id},
        ).first()
        if removed is None:
            raise NotFound("no such account")
        outbox.add(session, Topic.VAULT_REMOVED, str(account_id), user_id, {"count": 1})


def reveal_secret(
    sessions: SessionFactory, box: SecretBox, user_id: uuid.UUID, account_id: uuid.UUID
) -> str:
    """Return the decrypted secret of one of the caller's accounts."""
    with sessions() as session, session.begin():
        sealed = session.scalar(
            select(UserAccount.secret_encrypted).where(UserAccount.id == account_id, _live(user_id))
        )
    if sealed is None:
        raise NotFound("no such account")
    return box.open(sealed)


def _view(row: UserAccount) -> AccountView:
    return AccountView(
        id=row.id,
        job_id=row.job_id,
        item_index=row.item_index,
        provider=row.provider,
        external_id=row.external_id,
        username=row.username,
        metadata=row.metadata_,
        created_at=row.created_at,
    )
