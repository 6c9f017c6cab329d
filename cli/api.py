"""A small client of the tally HTTP API, raising the domain errors its answers mean."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from core.errors import (
    Conflict,
    InsufficientCredits,
    InvalidInput,
    NotFound,
    TallyError,
    Unauthorized,
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
            raise _error(response)
        return None if response.status_code == 304 else response.json()

    def stream_lines(self, method: str, path: str, **kwargs: Any) -> Iterator[str]:
        """Send a request and yield its answer's lines as they arrive, or raise its error."""
        with self._http.stream(method, path, **kwargs) as response:
            if response.status_code >= 400:
                response.read()
                raise _error(response)
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
                raise _error(response)
            if response.status_code == 200:
                etag = response.headers.get("etag", "")
                job = response.json()
                yield job


def _error(response: httpx.Response) -> TallyError:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        error = {"message": f"HTTP {response.status_code}"}
    message = str(error.get("message", response.reason_phrase))
    if response.status_code == 402:
        return InsufficientCredits(int(error.get("needed", 0)), int(error.get("balance", 0)))
    kinds: dict[int, type[TallyError]] = {
        400: InvalidInput,
        401: Unauthorized,
        404: NotFound,
        409: Conflict,
    }
    return kinds.get(response.status_code, TallyError)(message)
