"""One page of a user's list by keyset: newest first, resumed after the last row served.

Every list pages on the index it is read through, (user_id, sort key DESC, id DESC): a page
is one index range scan of `limit + 1` entries, whatever the page's depth, and its total
is a counter kept by the writes (never a count(*) per page). The position of a page's last
row travels in a signed cursor (core/cursors.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Row, func, select, tuple_
from sqlalchemy.orm import Session

T = TypeVar("T")


@dataclass(frozen=True)
class Keyset:
    """One page's rows and the sort key of its last row when more rows follow."""

    rows: Sequence[Row[Any]]
    last: tuple[Any, ...] | None


def fetch_keyset(
    session: Session,
    columns: Sequence[Any],
    where: ColumnElement[bool],
    keys: Sequence[Any],
    after: Sequence[Any] | None,
    limit: int,
) -> Keyset:
    """Rows matching `where`, in `keys` descending, strictly after the position `after`."""
    query = select(*columns).where(where)
    if after is not None:
        query = query.where(tuple_(*keys) < tuple_(*after))
    query = query.order_by(*(key.desc() for key in keys)).limit(limit + 1)
    found = session.execute(query).all()
    if len(found) <= limit:
        return Keyset(found, None)
    rows = found[:limit]
    return Keyset(rows, tuple(rows[-1]._mapping[key] for key in keys))


def fetch_page(
    session: Session,
    entity: type[T],
    where: ColumnElement[bool] | None,
    order_by: Sequence[Any],
    limit: int,
    offset: int,
) -> tuple[Sequence[T], int]:
    """Rows of one limit/offset page and the count of every row matching `where`.

    Only for short lists (reconciliation reports, which retention keeps few).
    """
    rows = select(entity).order_by(*order_by).limit(limit).offset(offset)
    count = select(func.count()).select_from(entity)
    if where is not None:
        rows, count = rows.where(where), count.where(where)
    return session.scalars(rows).all(), int(session.scalar(count) or 0)
