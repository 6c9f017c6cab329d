"""Mapping domain errors to JSON responses: the only place that knows status codes."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

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

logger = logging.getLogger(__name__)

STATUS_BY_ERROR: list[tuple[type[TallyError], int, str]] = [
    (PayloadTooLarge, 413, "payload_too_large"),
    (InvalidInput, 400, "invalid_input"),
    (Unauthorized, 401, "unauthorized"),
    (InsufficientCredits, 402, "insufficient_credits"),
    (Forbidden, 403, "forbidden"),
    (NotFound, 404, "not_found"),
    (ConfigurationError, 503, "unavailable"),
]


def error_body(code: str, message: str, **extra: object) -> dict[str, object]:
    """Return the JSON body every error answer has."""
    return {"error": {"code": code, "message": message, **extra}}


async def tally_error(request: Request, exc: Exception) -> Response:
    """Answer a domain error with its status code and a JSON body."""
    for error_type, status, code in STATUS_BY_ERROR:
        if isinstance(exc, error_type):
            extra: dict[str, object] = {}
            if isinstance(exc, InvalidInput) and exc.field:
                extra["field"] = exc.field
            if isinstance(exc, InsufficientCredits):
                extra.update(needed=exc.needed, balance=exc.balance)
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            return JSONResponse(error_body(code, str(exc), **extra), status, headers=headers)
    logger.exception("unmapped domain error", exc_info=exc)
    return JSONResponse(error_body("internal", "internal error"), 500)


async def http_error(request: Request, exc: Exception) -> Response:
    """Answer Starlette's HTTP errors (404 route, 405 method) as JSON."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 304:
        return Response(status_code=304, headers=exc.headers)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=exc.headers)


async def server_error(request: Request, exc: Exception) -> Response:
    """Answer an unexpected failure without leaking its details."""
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body("internal", "internal error"), 500)


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
