"""Reading request input strictly: bad input raises InvalidInput, never a 500."""

from __future__ import annotations

import json
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
MAX_OFFSET = 10_000_000
MAX_DRIFT_PAGE = 1000
# A report id (1 to 18 digits, no leading zero: always a bigint) or "latest".
REPORT_ID_PATTERN = "^([1-9][0-9]{0,17}|latest)$"
# Plain decimal digits only: int() would also take "1_000", " 5" and non-ASCII digits.
INTEGER = re.compile(r"-?[0-9]{1,18}")
# msgspec's ValidationError text: "Expected `int`, got `str` - at `$.count`".
VALIDATION = re.compile(r"(?P<detail>.*?)(?: - at `\$(?P<path>[^`]*)`)?", re.DOTALL)
MISSING = re.compile(r"Object missing required field `(?P<name>[^`]+)`")
UNKNOWN = re.compile(r"Object contains unknown field `(?P<name>[^`]+)`")
# The one spelling of a UUID the API accepts: lower case, dashed, 36 characters.
CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    """A limit/offset window over a list."""

    limit: int
    offset: int


async def read_body(request: Request, body_type: type[T]) -> T:
    """Return the request body decoded into `body_type`, or raise InvalidInput.

    Unknown fields are refused; integers must be JSON integers (not bools, floats or strings);
    a key given twice in one object is refused, never settled by whichever comes last.
    """
    body = await limited_body(request)
    try:
        text = body.decode("utf-8")
        decoded = msgspec.json.decode(text, type=body_type)
    except msgspec.ValidationError as exc:  # a DecodeError too: caught first
        raise invalid_field(str(exc)) from exc
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInput("request body must be JSON") from exc
    repeated = repeated_key(text)
    if repeated is not None:
        raise InvalidInput(f"duplicate key in request body: {repeated!r}", field=repeated)
    return decoded


class _Repeated(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _unique_pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    found: dict[str, object] = {}
    for key, value in pairs:
        if key in found:
            raise _Repeated(key)
        found[key] = value
    return found


def repeated_key(text: str) -> str | None:
    """The first key given twice in one object of a JSON text already known valid, or None."""
    if text.count('"') < 4:  # fewer than two keys: nothing to repeat
        return None
    try:
        json.loads(text, object_pairs_hook=_unique_pairs)
    except _Repeated as repeated:
        return repeated.key
    except (ValueError, RecursionError):
        return None  # msgspec read it; anything stdlib cannot is no duplicate of ours
    return None


async def limited_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """Read the body, refusing one that says or turns out to be larger than `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def invalid_field(message: str) -> InvalidInput:
    """Turn msgspec's validation message into InvalidInput naming the field (`$.a.b` -> `a.b`)."""
    found = VALIDATION.fullmatch(message)
    detail, path = (found["detail"], found["path"] or "") if found else (message, "")
    missing = MISSING.fullmatch(detail)
    if missing:
        field = f"{path}.{missing['name']}".removeprefix(".")
        return InvalidInput(f"{field} is required", field=field)
    unknown = UNKNOWN.fullmatch(detail)
    if unknown:
        field = f"{path}.{unknown['name']}".removeprefix(".")
        return InvalidInput(f"{field} is not a field of this request", field=field)
    field = path.removeprefix(".")
    if not field:
        return InvalidInput("request body must be a JSON object")
    return InvalidInput(f"{field}: {detail}", field=field)


def path_uuid(request: Request, name: str) -> uuid.UUID:
    """Return a UUID path parameter in its canonical spelling, or raise InvalidInput."""
    raw = str(request.path_params[name])
    if not CANONICAL_UUID.fullmatch(raw):
        raise InvalidInput(f"{name} must be a lower-case, dashed UUID", field=name)
    return uuid.UUID(raw)


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    """Return an integer query parameter within [low, high]."""
    raw = request.query_params.get(name)
    if raw is None:
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
        offset=query_int(request, "offset", 0, 0, MAX_OFFSET),
    )
