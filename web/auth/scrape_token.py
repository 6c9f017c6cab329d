"""Who may read /metrics and /readyz: holders of TALLY_METRICS_TOKEN, or anyone in development."""

from __future__ import annotations

import enum
import hmac

from starlette.requests import Request

from core.errors import Unauthorized
from core.settings import Settings


class Access(enum.Enum):
    """How much an operator probe may show to this caller."""

    FULL = "full"  # the scrape token was presented: host names and pids included
    OPEN = "open"  # development without a token: figures only


def probe_access(request: Request) -> Access:
    """The caller's access to the operator probes; raises Unauthorized when it has none."""
    settings: Settings = request.app.state.settings
    expected = settings.metrics_token
    if not expected:
        if settings.environment == "development":
            return Access.OPEN
        raise Unauthorized("TALLY_METRICS_TOKEN is not set; the operator probes are closed")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not _same(given.strip(), expected):
        raise Unauthorized("this endpoint needs the scrape token (TALLY_METRICS_TOKEN)")
    return Access.FULL


def _same(given: str, expected: str) -> bool:
    """Compare two tokens in constant time."""
    return hmac.compare_digest(given.encode(), expected.encode())
