"""Reading request input strictly: bad input raises InvalidInput, never a 500."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import TypeVar

import msgspec
from starlette.requests import Request

from core.errors import InvalidInput, PayloadTooLarge

MAX_BODY_BYTES = 16_384
DEFAULT_PAGE = 20
MAX_PAGE = 100
# Plain decimal digits only: int() would also take "1_000", " 5" and non-ASCII digits.
INTEGER = re.compile(r"-?[0-9]{1,18}")
# msgspec's ValidationError text: "Expected `int`, got `str` - at `$.count`".
VALIDATION = re.compile(r"(?P<detail>.*?)(?: - at `\$(?P<path>[^`]*)`)?", re.DOTALL)
MISSING = re.compile(r"Object missing required field `(?P<name>[^`]+)`")

T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    """A limit/offset window over a list."""

    limit: int
    offset: int


async def read_body(request: Request, body_type: type[T]) -> T:
    """Return the request body decoded into `body_type`, or raise InvalidInput.

    Unknown fields are ignored; integers must be JSON integers (not bools, floats or strings).
    """
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body is larger than {MAX_BODY_BYTES} bytes")
    try:
        return msgspec.json.decode(body.decode("utf-8"), type=body_type)
    except msgspec.ValidationError as exc:  # a DecodeError too: caught first
        raise invalid_field(str(exc)) from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput("request body must be JSON") from exc


def invalid_field(message: str) -> InvalidInput:
    """Turn msgspec's validation message into InvalidInput naming the field (`$.a.b` -> `a.b`)."""
    found = VALIDATION.fullmatch(message)
    detail, path = (found["detail"], found["path"] or "") if found else (message, "")
    missing = MISSING.fullmatch(detail)
    if missing:
        field = f"{path}.{missing['name']}".removeprefix(".")
        return InvalidInput(f"{field} is required", field=field)
    field = path.removeprefix(".")
    if not field:
        return InvalidInput("request body must be a JSON object")
    return InvalidInput(f"{field}: {detail}", field=field)


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
