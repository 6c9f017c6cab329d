"""Credits: a balance per user and a ledger whose sum always equals it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.database import SessionFactory
from core.errors import Conflict, InsufficientCredits, InvalidInput, NotFound
from core.pages import fetch_keyset
from core.schema import CreditLedger, UserCredits
from core.vocabulary import LedgerKind


@dataclass(frozen=True)
class LedgerEntry:
    """One movement of credits."""

    id: int
    kind: str
    amount: int
    job_id: uuid.UUID | None
    note: str
    created_at: datetime


@dataclass(frozen=True)
class CreditsView:
    """A user's balance and one page of their ledger, newest first."""

    balance: int
    entries: list[LedgerEntry]
    total: int  # every ledger entry of the user (the counter kept beside the balance)
    last: int | None = None  # the id the next page starts after, when there is one


def hold(session: Session, user_id: uuid.UUID, job_id: uuid.UUID, amount: int) -> None:
    """Take `amount` credits for a job inside the caller's transaction, or raise."""
    taken = session.execute(
        text(
            # One job more, and its hold one ledger entry more (the lists' totals).
            "UPDATE user_credits SET balance = balance - :amount, jobs_total = jobs_total + 1, "
            "ledger_total = ledger_total + 1, updated_at = now() "
            "WHERE user_id = :user_id AND balance >= :amount RETURNING balance"
        ),
        {"amount": amount, "user_id": user_id},
    ).first()
    if taken is None:
        raise InsufficientCredits(needed=amount, balance=balance_of(session, user_id))
    session.add(CreditLedger(user_id=user_id, job_id=job_id, kind=LedgerKind.HOLD, amount=-amount))


def release(session: Session, user_id: uuid.UUID, job_id: uuid.UUID, amount: int) -> bool:
    """Give back held credits once per job, inside the caller's transaction."""
    inserted = session.execute(
        insert(CreditLedger)
        .values(user_id=user_id, job_id=job_id, kind=LedgerKind.RELEASE, amount=amount)
        .on_conflict_do_nothing(index_elements=["job_id", "kind"])
        .returning(CreditLedger.id)
    ).first()
    if inserted is None:
        return False
    _add_to_balance(session, user_id, amount)
    return True


def grant(sessions: SessionFactory, user_id: uuid.UUID, amount: int, note: str = "") -> int:
    """Add credits to a user's balance; return the new balance."""
    if amount <= 0:
        raise InvalidInput("a grant must be a positive number of credits", field="amount")
    with sessions() as session, session.begin():
        if session.get(UserCredits, user_id) is None:
            raise NotFound(f"no user {user_id}")
        return add_grant(session, user_id, amount, note)


def add_grant(session: Session, user_id: uuid.UUID, amount: int, note: str = "") -> int:
    """Grant credits inside the caller's transaction; return the new balance."""
    session.add(CreditLedger(user_id=user_id, kind=LedgerKind.GRANT, amount=amount, note=note))
    return _add_to_balance(session, user_id, amount)


@dataclass(frozen=True)
class ReferencedGrant:
    """A grant or refund applied once per reference; `applied` is False for a repeat."""

    user_id: uuid.UUID
    amount: int
    reference: str
    balance: int
    applied: bool


def grant_once(
    sessions: SessionFactory, user_id: uuid.UUID, amount: int, reference: str, note: str = ""
) -> ReferencedGrant:
    """Add (or, when negative, take back) credits once per reference; repeats change nothing.

    A repeat of a reference with another user or amount raises Conflict, and so does a
    refund the balance cannot cover: a balance never goes below zero.
    """
    if amount == 0:
        raise InvalidInput("amount must not be 0", field="amount")
    kind = LedgerKind.GRANT if amount > 0 else LedgerKind.REFUND
    with sessions() as session, session.begin():
        if session.get(UserCredits, user_id) is None:
            raise NotFound(f"no user {user_id}")
        # A concurrent first use of the reference waits here until the other one commits.
        inserted = session.execute(
            insert(CreditLedger)
            .values(user_id=user_id, kind=kind, amount=amount, note=note, reference=reference)
            .on_conflict_do_nothing(index_elements=["reference"])
            .returning(CreditLedger.id)
        ).first()
        if inserted is None:
            return _repeat(session, user_id, amount, reference)
        balance = _move_balance(session, user_id, amount)
        return ReferencedGrant(user_id, amount, reference, balance, applied=True)


def _repeat(session: Session, user_id: uuid.UUID, amount: int, reference: str) -> ReferencedGrant:
    """The answer to a reference already applied: the same one, or Conflict."""
    earlier = session.execute(
        select(CreditLedger.user_id, CreditLedger.amount).where(CreditLedger.reference == reference)
    ).one()
    if (earlier.user_id, earlier.amount) != (user_id, amount):
        raise Conflict(f"reference {reference!r} was already used for another grant")
    return ReferencedGrant(user_id, amount, reference, balance_of(session, user_id), applied=False)


def _move_balance(session: Session, user_id: uuid.UUID, amount: int) -> int:
    """Add `amount` (maybe negative) to the balance, or raise Conflict below zero."""
    balance = session.scalar(
        text(
            "UPDATE user_credits SET balance = balance + :amount, "
            "ledger_total = ledger_total + 1, updated_at = now() "
            "WHERE user_id = :user_id AND balance + :amount >= 0 RETURNING balance"
        ),
        {"amount": amount, "user_id": user_id},
    )
    if balance is None:
        have = balance_of(session, user_id)
        raise Conflict(f"a refund of {-amount} credits exceeds the balance of {have}")
    return int(balance)


def balance_of(session: Session, user_id: uuid.UUID) -> int:
    """Return a user's current balance (0 for an unknown user)."""
    balance = session.scalar(select(UserCredits.balance).where(UserCredits.user_id == user_id))
    return int(balance or 0)


def view(
    sessions: SessionFactory, user_id: uuid.UUID, limit: int = 20, after: int | None = None
) -> CreditsView:
    """A user's balance with one page of their ledger (newest first, ids below `after`)."""
    ledger = CreditLedger.__table__.c
    columns = (ledger.id, ledger.kind, ledger.amount, ledger.job_id, ledger.note, ledger.created_at)
    mine = CreditLedger.user_id == user_id
    position = None if after is None else (after,)
    with sessions() as session, session.begin():
        page = fetch_keyset(session, columns, mine, (ledger.id,), position, limit)
        counters = session.execute(
            select(UserCredits.balance, UserCredits.ledger_total).where(
                UserCredits.user_id == user_id
            )
        ).first()
    entries = [LedgerEntry(**row._mapping) for row in page.rows]
    balance, total = (0, 0) if counters is None else (int(counters[0]), int(counters[1]))
    last = None if page.last is None else int(page.last[0])
    return CreditsView(balance, entries, total, last)


def _add_to_balance(session: Session, user_id: uuid.UUID, amount: int) -> int:
    balance = session.scalar(
        text(
            "UPDATE user_credits SET balance = balance + :amount, "
            "ledger_total = ledger_total + 1, updated_at = now() "
            "WHERE user_id = :user_id RETURNING balance"
        ),
        {"amount": amount, "user_id": user_id},
    )
    return int(balance or 0)
