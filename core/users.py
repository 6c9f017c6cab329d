"""Users and their API tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from sqlalchemy.sql import func

from core.credits import add_grant, grant
from core.database import SessionFactory
from core.errors import Conflict, NotFound, Unauthorized
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
    token_id: int = 0


@dataclass(frozen=True)
class IssuedToken:
    """A new API token (shown once) and the id that revokes it."""

    id: int
    user_id: uuid.UUID
    token: str
    label: str


@dataclass(frozen=True)
class TokenView:
    """An API token as listed: never the token itself."""

    id: int
    label: str
    created_at: datetime
    revoked_at: datetime | None


def create_user(
    sessions: SessionFactory,
    name: str,
    credits: int = 0,
    *,
    is_admin: bool = False,
    user_id: uuid.UUID | None = None,
) -> NewUser:
    """Create a user with a credits row and one API token; grant credits if asked.

    `user_id` gives the user a known id (the frontend's user id); Conflict if it is taken.
    """
    token = new_token()
    with sessions() as session, session.begin():
        created = session.execute(
            insert(User)
            .values(id=user_id or uuid.uuid4(), name=name, is_admin=is_admin)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(User.id)
        ).first()
        if created is None:
            raise Conflict(f"a user {user_id} already exists")
        new_id: uuid.UUID = created.id
        session.add(UserCredits(user_id=new_id, balance=0))
        issued = ApiToken(user_id=new_id, token_hash=hash_token(token), label="initial")
        session.add(issued)
        session.flush()
        token_id = issued.id
    if credits > 0:
        grant(sessions, new_id, credits, note="initial credits")
    return NewUser(user_id=new_id, token=token, token_id=token_id)


def provision(
    sessions: SessionFactory, user_id: uuid.UUID, name: str, signup_credits: int = 0
) -> Caller:
    """Return the user with this id, creating them (once, whoever races) if they are new."""
    with sessions() as session, session.begin():
        # A concurrent first request waits here until the other one commits, then skips.
        created = session.execute(
            insert(User)
            .values(id=user_id, name=name)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(User.id)
        ).first()
        if created is not None:
            session.add(UserCredits(user_id=user_id, balance=0))
            session.flush()
            if signup_credits > 0:
                add_grant(session, user_id, signup_credits, note="signup credits")
        return _caller(session, user_id)


def _caller(session: Session, user_id: uuid.UUID) -> Caller:
    row = session.execute(select(User.id, User.name, User.is_admin).where(User.id == user_id)).one()
    return Caller(user_id=row.id, name=row.name, is_admin=row.is_admin)


def issue_token(sessions: SessionFactory, user_id: uuid.UUID, label: str = "") -> str:
    """Create another token for a user and return it (shown once)."""
    return issue(sessions, user_id, label).token


def issue(sessions: SessionFactory, user_id: uuid.UUID, label: str = "") -> IssuedToken:
    """Create another token for a user; NotFound for an unknown user."""
    token = new_token()
    with sessions() as session, session.begin():
        if session.get(User, user_id) is None:
            raise NotFound(f"no user {user_id}")
        row = ApiToken(user_id=user_id, token_hash=hash_token(token), label=label)
        session.add(row)
        session.flush()
        return IssuedToken(id=row.id, user_id=user_id, token=token, label=label)


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


def revoke_token(sessions: SessionFactory, token_id: int, owner: uuid.UUID | None = None) -> str:
    """Revoke one live token (of `owner`, when given); return its hash, or raise NotFound."""
    mine = [ApiToken.user_id == owner] if owner is not None else []
    with sessions() as session, session.begin():
        revoked = session.execute(
            update(ApiToken)
            .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None), *mine)
            .values(revoked_at=func.now())
            .returning(ApiToken.token_hash)
        ).first()
    if revoked is None:
        raise NotFound(f"no live token {token_id}")
    return str(revoked.token_hash)


def list_tokens(sessions: SessionFactory, user_id: uuid.UUID) -> list[TokenView]:
    """A user's tokens, newest first, revoked ones included."""
    with sessions() as session, session.begin():
        rows = session.execute(
            select(ApiToken.id, ApiToken.label, ApiToken.created_at, ApiToken.revoked_at)
            .where(ApiToken.user_id == user_id)
            .order_by(ApiToken.id.desc())
        ).all()
    return [TokenView(r.id, r.label, r.created_at, r.revoked_at) for r in rows]


def revoke_tokens(sessions: SessionFactory, user_id: uuid.UUID) -> int:
    """Revoke every token of a user; return how many were live."""
    with sessions() as session, session.begin():
        result = session.execute(
            update(ApiToken)
            .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=func.now())
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
