"""The HTTP provider: POSTs to an operator-configured URL with an Idempotency-Key."""

from __future__ import annotations

from typing import Any

import httpx

from core.errors import PermanentProviderError, ProviderUnavailable, TransientProviderError
from core.providers.base import CreatedAccount

RETRYABLE_STATUS = frozenset({408, 425, 429})


class HttpProvider:
    """Creates accounts through the operator's own provisioning API."""

    name = "http"

    def __init__(self, url: str, timeout: float, token: str = "") -> None:
        if not url:
            raise ProviderUnavailable("TALLY_PROVIDER_URL is not set")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._url = url
        self._client = httpx.AsyncClient(timeout=timeout, headers=headers)

    async def create_account(self, idempotency_key: str) -> CreatedAccount:
        """POST one creation request; map status codes to transient or permanent errors."""
        try:
            response = await self._client.post(
                self._url,
                json={"idempotency_key": idempotency_key},
                headers={"Idempotency-Key": idempotency_key},
            )
        except httpx.TransportError as exc:
            raise TransientProviderError(f"http provider: {type(exc).__name__}") from exc
        if response.status_code >= 500 or response.status_code in RETRYABLE_STATUS:
            raise TransientProviderError(f"http provider answered {response.status_code}")
        if response.status_code >= 400:
            raise PermanentProviderError(f"http provider answered {response.status_code}")
        return _parse_account(response.json())

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()


def _parse_account(body: Any) -> CreatedAccount:
    try:
        return CreatedAccount(
            external_id=str(body["external_id"]),
            username=str(body["username"]),
            secret=str(body["secret"]),
            metadata=dict(body.get("metadata") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentProviderError("http provider answered an unreadable body") from exc
