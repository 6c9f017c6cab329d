"""Users and their API tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.sql import func

from core.credits import grant
from core.database import SessionFactory
from core.errors import Unauthorized
from core.schema import ApiToken, User, UserCredits
from core.tokens import hash_token, new_token


@dataclass(frozen=True)
class Caller:
    """The authenticated user behind a request."""

    user_id: uuid.UUID
    name: str
    is_admin: bool


@dataclass(frozen=True)
class NewUser:
    """A created user and the token that was shown once."""

    user_id: uuid.UUID
    token: str


def create_user(
    sessions: SessionFactory, name: str, credits: int = 0, *, is_admin: bool = False
) -> NewUser:
    """Create a user with a credits row and one API token; grant credits if asked."""
    token = new_token()
    with sessions() as session, session.begin():
        user = User(name=name, is_admin=is_admin)
        session.add(user)
        session.flush()
        session.add(UserCredits(user_id=user.id, balance=0))
        session.add(ApiToken(user_id=user.id, token_hash=hash_token(token), label="initial"))
        user_id = user.id
    if credits > 0:
        grant(sessions, user_id, credits, note="initial credits")
    return NewUser(user_id=user_id, token=token)


def issue_token(sessions: SessionFactory, user_id: uuid.UUID, label: str = "") -> str:
    """Create another token for a user and return it (shown once)."""
    token = new_token()
    with sessions() as session, session.begin():
        session.add(ApiToken(user_id=user_id, token_hash=hash_token(token), label=label))
    return token


def authenticate(sessions: SessionFactory, token: str) -> Caller:
    """Return the caller a bearer token belongs to, or raise Unauthorized."""
    with sessions() as session, session.begin():
        row = session.execute(
            select(User.id, User.name, User.is_admin)
            .join(ApiToken, ApiToken.user_id == User.id)
            .where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))
        ).first()
    if row is None:
        raise Unauthorized("invalid or revoked token")
    return Caller(user_id=row.id, name=row.name, is_admin=row.is_admin)


def revoke_tokens(sessions: SessionFactory, user_id: uuid.UUID) -> int:
    """Revoke every token of a user; return how many were live."""
    with sessions() as session, session.begin():
        result = session.execute(
            update(ApiToken)
            .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=func.now())
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
