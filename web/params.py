"""Reading request input strictly: bad input raises InvalidInput, never a 500."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from core.errors import InvalidInput, PayloadTooLarge

MAX_BODY_BYTES = 16_384
DEFAULT_PAGE = 20
MAX_PAGE = 100
# Plain decimal digits only: int() would also take "1_000", " 5" and non-ASCII digits.
INTEGER = re.compile(r"-?[0-9]{1,18}")


@dataclass(frozen=True)
class Page:
    """A limit/offset window over a list."""

    limit: int
    offset: int


async def json_object(request: Request) -> dict[str, Any]:
    """Return the request body as a JSON object, or raise InvalidInput."""
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body is larger than {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("request body must be JSON") from exc
    if not isinstance(data, dict):
        raise InvalidInput("request body must be a JSON object")
    return data


def strict_int(value: Any, field: str) -> int:
    """Return value if it is a JSON integer (not a bool, float or string)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be an integer", field=field)
    return value


def path_uuid(request: Request, name: str) -> uuid.UUID:
    """Return a UUID path parameter, or raise InvalidInput for a malformed one."""
    raw = request.path_params[name]
    try:
        return uuid.UUID(str(raw))
    except ValueError as exc:
        raise InvalidInput(f"{name} must be a UUID", field=name) from exc


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    """Return an integer query parameter within [low, high]."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not INTEGER.fullmatch(raw):
        raise InvalidInput(f"{name} must be an integer", field=name)
    value = int(raw)
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}", field=name)
    return value


def page(request: Request) -> Page:
    """Return the limit/offset the request asked for."""
    return Page(
        limit=query_int(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE),
        offset=query_int(request, "offset", 0, 0, 10_000_000),
    )
