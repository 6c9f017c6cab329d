"""Paged lists over HTTP: `?limit=&cursor=` in, `next` in the body and a `Link` header out.

The jobs, vault and ledger lists page by cursor only. `offset` is refused with a 400 that
says what to do instead: an offset costs a scan of every row it skips, and a client that
pages by offset would otherwise be served the first page again and again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from starlette.requests import Request

from core.cursors import CursorBox
from core.errors import InvalidInput
from web.contract.params import DEFAULT_PAGE, MAX_PAGE, query_int

TIME_ID = (str, str)  # (created_at, id) of jobs and vault accounts, as a cursor holds them


@dataclass(frozen=True)
class Window:
    """What a list request asked for: how many rows, after which cursor."""

    limit: int
    cursor: str | None


@dataclass(frozen=True)
class Next:
    """Where the next page is: a cursor, the URL carrying it and its Link header (or none)."""

    cursor: str | None
    url: str | None

    @property
    def headers(self) -> dict[str, str]:
        """The RFC 8288 Link header to the next page, when there is one."""
        return {} if self.url is None else {"Link": f'<{self.url}>; rel="next"'}


def window(request: Request) -> Window:
    """The limit and cursor of a list request; `offset` is refused."""
    if "offset" in request.query_params:
        raise InvalidInput(
            "offset is not supported: follow `next` (or the Link header), which carries a cursor",
            field="offset",
        )
    cursor = request.query_params.get("cursor")
    if cursor == "":
        raise InvalidInput("cursor must not be empty: leave it out for the first page", "cursor")
    return Window(query_int(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE), cursor)


def cursors(request: Request) -> CursorBox:
    """The app's cursor box (keyed from the deployment's secret)."""
    box: CursorBox = request.app.state.cursors
    return box


def time_id_after(
    request: Request, asked: Window, listing: str, user_id: uuid.UUID
) -> tuple[datetime, uuid.UUID] | None:
    """The (created_at, id) position a jobs or vault cursor carries."""
    if asked.cursor is None:
        return None
    when, ident = cursors(request).open(asked.cursor, listing, user_id, TIME_ID)
    try:
        return datetime.fromisoformat(str(when)), uuid.UUID(str(ident))
    except ValueError:
        raise InvalidInput("cursor is malformed: start again without `cursor`") from None


def id_after(request: Request, asked: Window, listing: str, user_id: uuid.UUID) -> int | None:
    """The id position a ledger cursor carries."""
    if asked.cursor is None:
        return None
    (after,) = cursors(request).open(asked.cursor, listing, user_id, (int,))
    return int(after)


def next_page(
    request: Request,
    asked: Window,
    listing: str,
    user_id: uuid.UUID,
    last: Sequence[str | int] | None,
) -> Next:
    """The next page after position `last` (None when this page was the last)."""
    if last is None:
        return Next(None, None)
    cursor = cursors(request).seal(listing, user_id, last)
    query = urlencode({"limit": asked.limit, "cursor": cursor})
    return Next(cursor, f"{request.url.path}?{query}")


def time_id(last: tuple[datetime, uuid.UUID] | None) -> tuple[str, str] | None:
    """A (created_at, id) position as a cursor holds it."""
    return None if last is None else (last[0].isoformat(), str(last[1]))
