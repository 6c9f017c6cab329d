"""A small client of the tally HTTP API, raising the domain errors its answers mean."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx

from core.errors import (
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
from core.vocabulary import JobStatus

LONG_POLL_SECONDS = 25


class Api:
    """A small client of the tally HTTP API."""

    def __init__(self, url: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=60)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request and return its JSON body, or raise the matching domain error."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise TallyError(f"cannot reach {self._http.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise domain_error(response)
        return None if response.status_code == 304 else response.json()

    def stream_lines(self, method: str, path: str, **kwargs: Any) -> Iterator[str]:
        """Send a request and yield its answer's lines as they arrive, or raise its error."""
        with self._http.stream(method, path, **kwargs) as response:
            if response.status_code >= 400:
                response.read()
                raise domain_error(response)
            yield from response.iter_lines()

    def follow(self, job: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Yield the job each time it changes (long-poll), until it is terminal."""
        etag = ""
        while not JobStatus(job["status"]).terminal:
            headers = {"If-None-Match": etag} if etag else {}
            response = self._http.get(
                f"/api/job/{job['id']}", params={"wait": LONG_POLL_SECONDS}, headers=headers
            )
            if response.status_code >= 400:
                raise domain_error(response)
            if response.status_code == 200:
                etag = response.headers.get("etag", "")
                job = response.json()
                yield job


ErrorFactory = Callable[[str, dict[str, Any], httpx.Response], TallyError]


def _retry_after(response: httpx.Response) -> int:
    try:
        return int(response.headers.get("retry-after", "0"))
    except ValueError:
        return 0


def _later(kind: type[TooManyRequests | Unavailable]) -> ErrorFactory:
    def make(message: str, error: dict[str, Any], response: httpx.Response) -> TallyError:
        seconds = _retry_after(response)
        hint = f" (retry in {seconds} s)" if seconds else ""
        return kind(message + hint, seconds)

    return make


def _invalid(kind: type[InvalidInput]) -> ErrorFactory:
    def make(message: str, error: dict[str, Any], response: httpx.Response) -> TallyError:
        field = error.get("field")
        return kind(message, str(field) if field else None)

    return make


def _plain(kind: type[TallyError], prefix: str = "") -> ErrorFactory:
    def make(message: str, error: dict[str, Any], response: httpx.Response) -> TallyError:
        return kind(prefix + message)

    return make


def _short(message: str, error: dict[str, Any], response: httpx.Response) -> TallyError:
    return InsufficientCredits(int(error.get("needed", 0)), int(error.get("balance", 0)))


# Every error code the service's contract declares (web/contract/errors.py, ERROR_CODES), as
# the domain error this client raises; `tally` prints its message and exits 1.
ERRORS_BY_CODE: dict[str, ErrorFactory] = {
    "invalid_input": _invalid(InvalidInput),
    "payload_too_large": _invalid(PayloadTooLarge),
    "idempotency_key_reused": _invalid(IdempotencyKeyReused),
    "unauthorized": _plain(Unauthorized, "the token was refused (--token or TALLY_TOKEN): "),
    "insufficient_credits": _short,
    "forbidden": _plain(Forbidden, "not allowed: "),
    "not_found": _plain(NotFound),
    "conflict": _plain(Conflict),
    "too_many_requests": _later(TooManyRequests),
    "unavailable": _later(Unavailable),
    "method_not_allowed": _plain(TallyError, "the service does not answer this request: "),
    "http_error": _plain(TallyError, "the service refused the request: "),
    "internal": _plain(TallyError, "the service failed (see its log): "),
}
# An answer without a known code (a proxy's page, a newer service): by status alone.
KINDS_BY_STATUS: dict[int, type[TallyError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
}


def domain_error(response: httpx.Response) -> TallyError:
    """The domain error an error answer means, with the service's message."""
    try:
        error = response.json()["error"]
        if not isinstance(error, dict):
            raise TypeError(error)
    except (ValueError, KeyError, TypeError):
        error = {"message": f"HTTP {response.status_code}"}
    message = str(error.get("message", response.reason_phrase))
    factory = ERRORS_BY_CODE.get(str(error.get("code", "")))
    if factory is not None:
        return factory(message, error, response)
    if response.status_code == 402:
        return _short(message, error, response)
    return KINDS_BY_STATUS.get(response.status_code, TallyError)(message)
