"""Mapping domain errors to JSON responses: the only place that knows status codes."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from core.errors import (
    ConfigurationError,
    Forbidden,
    InsufficientCredits,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    TallyError,
    Unauthorized,
)
from web import bodies
from web.answers import json_response

logger = logging.getLogger(__name__)

INTERNAL = bodies.ErrorDetail("internal", "internal error")

STATUS_BY_ERROR: list[tuple[type[TallyError], int, str]] = [
    (PayloadTooLarge, 413, "payload_too_large"),
    (InvalidInput, 400, "invalid_input"),
    (Unauthorized, 401, "unauthorized"),
    (InsufficientCredits, 402, "insufficient_credits"),
    (Forbidden, 403, "forbidden"),
    (NotFound, 404, "not_found"),
    (ConfigurationError, 503, "unavailable"),
]


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


async def tally_error(request: Request, exc: Exception) -> Response:
    """Answer a domain error with its status code and a JSON body."""
    for error_type, status, code in STATUS_BY_ERROR:
        if isinstance(exc, error_type):
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            return error_response(_detail(exc, code), status, headers)
    logger.exception("unmapped domain error", exc_info=exc)
    return error_response(INTERNAL, 500)


async def http_error(request: Request, exc: Exception) -> Response:
    """Answer Starlette's HTTP errors (404 route, 405 method) as JSON."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 304:
        return Response(status_code=304, headers=exc.headers)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    detail = bodies.ErrorDetail(code, str(exc.detail))
    return error_response(detail, exc.status_code, exc.headers)


async def server_error(request: Request, exc: Exception) -> Response:
    """Answer an unexpected failure without leaking its details."""
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
    Exception: server_error,
}
