"""Mapping domain errors to JSON responses: the only place that knows status codes."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from core.errors import (
    ConfigurationError,
    Conflict,
    Forbidden,
    IdempotencyKeyReused,
    InsufficientCredits,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    TallyError,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)
from web.contract import bodies
from web.contract.answers import json_response

logger = logging.getLogger(__name__)

INTERNAL = bodies.ErrorDetail("internal", "internal error")
RETRY_AFTER_SECONDS = 5

STATUS_BY_ERROR: list[tuple[type[TallyError], int, str]] = [
    (PayloadTooLarge, 413, "payload_too_large"),
    (IdempotencyKeyReused, 422, "idempotency_key_reused"),
    (InvalidInput, 400, "invalid_input"),
    (Unauthorized, 401, "unauthorized"),
    (InsufficientCredits, 402, "insufficient_credits"),
    (Forbidden, 403, "forbidden"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (TooManyRequests, 429, "too_many_requests"),
    (ConfigurationError, 503, "unavailable"),
    (Unavailable, 503, "unavailable"),
]
# Starlette's own HTTP errors (no route, wrong method), and any other it raises.
CODE_BY_HTTP_STATUS = {404: "not_found", 405: "method_not_allowed"}
OTHER_HTTP_ERROR = "http_error"
# Every `error.code` an answer may carry: the contract's vocabulary of error codes.
ERROR_CODES: frozenset[str] = frozenset(
    [code for _, _, code in STATUS_BY_ERROR]
    + list(CODE_BY_HTTP_STATUS.values())
    + [OTHER_HTTP_ERROR, INTERNAL.code]
)


def error_response(
    detail: bodies.ErrorDetail, status: int, headers: Mapping[str, str] | None = None
) -> Response:
    """The JSON answer every error has."""
    return json_response(bodies.Error(detail), status, headers)


def _detail(exc: TallyError, code: str) -> bodies.ErrorDetail:
    detail = bodies.ErrorDetail(code, str(exc))
    if isinstance(exc, InvalidInput) and exc.field:
        detail.field = exc.field
    if isinstance(exc, InsufficientCredits):
        detail.needed, detail.balance = exc.needed, exc.balance
    return detail


def _headers(exc: TallyError, status: int) -> dict[str, str] | None:
    if isinstance(exc, TooManyRequests | Unavailable):
        return {"Retry-After": str(exc.retry_after)}
    return {"WWW-Authenticate": "Bearer"} if status == 401 else None


def domain_error_response(exc: TallyError) -> Response:
    """A domain error's status code, headers and JSON body."""
    for error_type, status, code in STATUS_BY_ERROR:
        if isinstance(exc, error_type):
            return error_response(_detail(exc, code), status, _headers(exc, status))
    logger.error("unmapped domain error", exc_info=exc)
    return error_response(INTERNAL, 500)


async def tally_error(request: Request, exc: Exception) -> Response:
    """Answer a domain error with its status code and a JSON body."""
    assert isinstance(exc, TallyError)
    return domain_error_response(exc)


async def http_error(request: Request, exc: Exception) -> Response:
    """Answer Starlette's HTTP errors (404 route, 405 method) as JSON."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 304:
        return Response(status_code=304, headers=exc.headers)
    code = CODE_BY_HTTP_STATUS.get(exc.status_code, OTHER_HTTP_ERROR)
    detail = bodies.ErrorDetail(code, str(exc.detail))
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return error_response(detail, exc.status_code, headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method the routes of this path answer (a path may have a route per method)."""
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.path_regex.match(request.url.path):
            methods |= route.methods or set()
    return sorted(methods)


def database_unreachable(exc: BaseException) -> bool:
    """Whether an error means the database could not be reached (or the connection died)."""
    if isinstance(exc, OperationalError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def database_down() -> Unavailable:
    """The error of a request the database could not serve: it changed nothing."""
    return Unavailable("the database is unavailable; retry later", RETRY_AFTER_SECONDS)


def unavailable_response() -> Response:
    """503 with Retry-After: the database is down."""
    return domain_error_response(database_down())


async def database_error(request: Request, exc: Exception) -> Response:
    """Answer 503 when the database cannot be reached; any other database error is a 500."""
    if database_unreachable(exc):
        logger.warning("database unreachable on %s %s: %s", request.method, request.url.path, exc)
        return unavailable_response()
    return await server_error(request, exc)


async def server_error(request: Request, exc: Exception) -> Response:
    """Answer an unexpected failure without leaking its details."""
    if database_unreachable(exc):
        return unavailable_response()
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(INTERNAL, 500)


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client left before sending its whole request: nothing was done, nobody to answer."""
    logger.info("client disconnected during %s %s", request.method, request.url.path)
    return Response(status_code=400)


EXCEPTION_HANDLERS = {
    ClientDisconnect: client_gone,
    TallyError: tally_error,
    HTTPException: http_error,
    DBAPIError: database_error,
    PoolTimeout: database_error,
    Exception: server_error,
}
