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
from core.pages import fetch_keyset
from core.schema import UserAccount, UserStats
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


# What a list shows (never the secret), in AccountView's names; the order of
# ix_user_accounts_live.
_COLUMNS = UserAccount.__table__.c
LIST_COLUMNS = (
    *(_COLUMNS[name] for name in ("id", "job_id", "item_index", "provider", "external_id")),
    _COLUMNS.username,
    _COLUMNS["metadata"].label("metadata"),
    _COLUMNS.created_at,
)
KEYS = (_COLUMNS.created_at, _COLUMNS.id)
AccountPosition = tuple[datetime, uuid.UUID]


def _live(user_id: uuid.UUID) -> Any:
    return (UserAccount.user_id == user_id) & UserAccount.deleted_at.is_(None)


@dataclass(frozen=True)
class AccountList:
    """One page of the vault, the live accounts it holds, and where the next page starts."""

    accounts: list[AccountView]
    total: int  # the stats card's business_centers: right once the apply has caught up
    last: AccountPosition | None


def list_accounts(
    sessions: SessionFactory, user_id: uuid.UUID, limit: int, after: AccountPosition | None = None
) -> AccountList:
    """One page of the caller's live accounts after `after`, newest first, and their total."""
    with sessions() as session, session.begin():
        page = fetch_keyset(session, LIST_COLUMNS, _live(user_id), KEYS, after, limit)
        total = session.scalar(
            select(UserStats.business_centers).where(UserStats.user_id == user_id)
        )
    views = [AccountView(**row._mapping) for row in page.rows]
    last = None if page.last is None else (page.last[0], page.last[1])
    return AccountList(views, max(0, int(total or 0)), last)


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
