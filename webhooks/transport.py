"""One HTTP POST to a webhook endpoint, connecting only to addresses deliveries may reach.

The connection pool's network backend resolves each host itself and refuses a forbidden
address before connecting (TLS still verifies the host name), so a redirect, a DNS answer
that changed since registration or a name that resolves to a private address cannot reach
inside the network. Only 307/308 redirects are followed (they keep the POST and its body).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpcore

from core.webhook_address import ForbiddenAddress, resolve

MAX_REDIRECTS = 3
SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)
MAX_ANSWER_BYTES = 65_536


@dataclass(frozen=True)
class Answer:
    """What an endpoint answered: a status, or the reason none came."""

    status: int | None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        """Whether the endpoint took the event (any 2xx)."""
        return self.status is not None and 200 <= self.status < 300


class GuardedBackend(httpcore.SyncBackend):
    """A network backend that connects only to allowed addresses of a host."""

    def __init__(self, allow_private: bool) -> None:
        self._allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        """Resolve `host`, refuse forbidden addresses, connect to the first that answers."""
        error: Exception | None = None
        for address in resolve(host, port, self._allow_private):
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (OSError, httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise httpcore.ConnectError(f"cannot connect to {host}: {error}")


class Transport:
    """A pool of connections to webhook endpoints, shared by a process's delivery threads."""

    def __init__(self, allow_private: bool, timeout: float, connections: int) -> None:
        self._timeout = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        self._pool = httpcore.ConnectionPool(
            max_connections=connections,
            network_backend=GuardedBackend(allow_private),
            retries=0,
        )

    def post(self, url: str, headers: dict[str, str], body: bytes) -> Answer:
        """POST `body` to `url`, following at most MAX_REDIRECTS 307/308 redirects."""
        for _ in range(MAX_REDIRECTS + 1):
            try:
                status, location = self._once(url, headers, body)
            except ForbiddenAddress as exc:
                return Answer(None, str(exc))
            except httpcore.TimeoutException:
                return Answer(None, "timed out")
            except (
                httpcore.NetworkError,
                httpcore.ProtocolError,
                httpcore.UnsupportedProtocol,
            ) as exc:
                return Answer(None, f"connection failed: {type(exc).__name__}")
            if status not in (307, 308) or not location:
                return Answer(status)
            url = urljoin(url, location)
            if urlsplit(url).scheme not in ("http", "https"):
                return Answer(status, "redirect to a non-HTTP URL")
        return Answer(None, "too many redirects")

    def _once(self, url: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        extensions = {"timeout": self._timeout}
        with self._pool.stream(
            "POST", url, headers=list(headers.items()), content=body, extensions=extensions
        ) as response:
            read = 0
            for chunk in response.iter_stream():
                read += len(chunk)
                if read > MAX_ANSWER_BYTES:
                    break
            location = dict(
                (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in response.headers
            ).get("location", "")
            return response.status, location

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.close()
