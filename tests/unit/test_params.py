"""Strict request parsing: every malformed value raises InvalidInput, never passes through."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import msgspec
import pytest
from starlette.requests import Request
from starlette.types import Message

from core.errors import InvalidInput, PayloadTooLarge
from web.contract.bodies import JobRequest
from web.contract.params import (
    DEFAULT_PAGE,
    MAX_BODY_BYTES,
    MAX_PAGE,
    invalid_field,
    page,
    path_uuid,
    query_int,
    read_body,
)


def make_request(
    body: bytes = b"", query: str = "", path_params: dict[str, Any] | None = None
) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [],
        "query_string": query.encode(),
        "path_params": path_params or {},
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


def read_job_request(body: bytes) -> JobRequest:
    return asyncio.run(read_body(make_request(body), JobRequest))


def test_read_body_returns_the_struct() -> None:
    assert read_job_request(b'{"count": 3, "provider": "sandbox"}') == JobRequest(3, "sandbox")
    assert read_job_request(b'{"count": 3}').provider is msgspec.UNSET


@pytest.mark.parametrize("name", ["provder", "colour", "Count"])
def test_read_body_refuses_unknown_fields_by_name(name: str) -> None:
    with pytest.raises(InvalidInput, match=name) as caught:
        read_job_request(json.dumps({"count": 3, name: "sandbox"}).encode())
    assert caught.value.field == name


DEEP = 5_000  # within the size limit: depth alone must be refused


@pytest.mark.parametrize(
    "body",
    [
        b"[" * DEEP + b"]" * DEEP,
        b'{"count": 1, "x": ' + b"[" * DEEP + b"]" * DEEP + b"}",
        b'{"count": 1, "x": ' + b'{"":' * DEEP + b"1" + b"}" * DEEP + b"}",
        b'{"count": 1, "provider": ' + b"[" * DEEP + b"]" * DEEP + b"}",
        b'{"count": 1e999999}',
        b'{"count": ' + b"9" * 5000 + b"}",
        b'{"count": 1, "provider": "\\ud800"}',
        '{"count": 1}'.encode("utf-16"),
        '{"count": 1}'.encode("utf-32"),
        b"\xef\xbb\xbf" + b'{"count": 1}',
        b'{"count": 1, "provider": "\x00"}',
    ],
)
def test_read_body_refuses_deep_huge_and_oddly_encoded_bodies(body: bytes) -> None:
    with pytest.raises(InvalidInput):
        asyncio.run(read_body(make_request(body), JobRequest))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"count=3",
        b"{",
        b"\xff\xfe\x00",
        b'{"count": 3, "x": "\xff"}',
        b"[1, 2]",
        b"3",
        b'"text"',
        b"null",
        b"true",
    ],
)
def test_read_body_refuses_anything_but_an_object(body: bytes) -> None:
    with pytest.raises(InvalidInput) as caught:
        read_job_request(body)
    assert caught.value.field is None


def test_read_body_refuses_a_body_that_is_too_large() -> None:
    body = json.dumps({"count": 1, "pad": "x" * MAX_BODY_BYTES}).encode()
    with pytest.raises(PayloadTooLarge, match="larger than"):
        read_job_request(body)


@pytest.mark.parametrize("count", [7, -2, 0, 10**30])
def test_count_accepts_any_integer_the_range_is_checked_on_submit(count: int) -> None:
    assert read_job_request(json.dumps({"count": count}).encode()).count == count


@pytest.mark.parametrize("value", [True, False, 1.0, 2.5, 1e2, "3", None, [1], {"n": 1}])
def test_count_refuses_everything_but_an_integer(value: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        read_job_request(json.dumps({"count": value}).encode())
    assert caught.value.field == "count"


def test_a_missing_field_is_named() -> None:
    with pytest.raises(InvalidInput, match="count is required") as caught:
        read_job_request(b'{"provider": "sandbox"}')
    assert caught.value.field == "count"


@pytest.mark.parametrize("value", [7, None, {"name": "sandbox"}, ["sandbox"]])
def test_provider_must_be_a_string(value: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        read_job_request(json.dumps({"count": 1, "provider": value}).encode())
    assert caught.value.field == "provider"


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ("Expected `int`, got `str` - at `$.count`", "count"),
        ("Expected `int`, got `str` - at `$.items[2].count`", "items[2].count"),
        ("Object missing required field `count`", "count"),
        ("Object missing required field `id` - at `$.items[0]`", "items[0].id"),
        ("Expected `object`, got `array`", None),
    ],
)
def test_msgspec_paths_become_the_field(message: str, field: str | None) -> None:
    assert invalid_field(message).field == field


def test_path_uuid_parses_a_uuid() -> None:
    value = uuid.uuid4()
    assert path_uuid(make_request(path_params={"job_id": str(value)}), "job_id") == value


@pytest.mark.parametrize("raw", ["", "42", "not-a-uuid", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"])
def test_path_uuid_refuses_malformed_values(raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        path_uuid(make_request(path_params={"job_id": raw}), "job_id")
    assert caught.value.field == "job_id"


@pytest.mark.parametrize(("query", "expected"), [("", 20), ("offset=3", 20), ("limit=7", 7)])
def test_query_int_reads_or_defaults(query: str, expected: int) -> None:
    assert query_int(make_request(query=query), "limit", 20, 1, 100) == expected


@pytest.mark.parametrize(
    "query",
    [
        "limit=",
        "limit=abc",
        "limit=1.5",
        "limit=0",
        "limit=101",
        "limit=-3",
        "limit=1_0",
        "limit=%201",
        "limit=%D9%A5",
        "limit=" + "9" * 5000,
    ],
)
def test_query_int_refuses_non_integers_and_values_out_of_range(query: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        query_int(make_request(query=query), "limit", 20, 1, 100)
    assert caught.value.field == "limit"


def test_page_defaults_and_bounds() -> None:
    window = page(make_request())
    assert (window.limit, window.offset) == (DEFAULT_PAGE, 0)
    window = page(make_request(query=f"limit={MAX_PAGE}&offset=40"))
    assert (window.limit, window.offset) == (MAX_PAGE, 40)
    with pytest.raises(InvalidInput):
        page(make_request(query="offset=-1"))
    with pytest.raises(InvalidInput):
        page(make_request(query=f"limit={MAX_PAGE + 1}"))
