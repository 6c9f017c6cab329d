"""One page of rows, newest first by the caller's order, with the total they come from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

T = TypeVar("T")


def fetch_page(
    session: Session,
    entity: type[T],
    where: ColumnElement[bool] | None,
    order_by: Sequence[Any],
    limit: int,
    offset: int,
) -> tuple[Sequence[T], int]:
    """Return the rows of one page and the count of every row matching `where`."""
    rows = select(entity).order_by(*order_by).limit(limit).offset(offset)
    count = select(func.count()).select_from(entity)
    if where is not None:
        rows, count = rows.where(where), count.where(where)
    return session.scalars(rows).all(), int(session.scalar(count) or 0)
