"""Request-scoped log fields: every record logged while serving a caller carries user_id."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from core.logs import log_context
from web.auth.backend import TokenUser


class RequestLogContext:
    """ASGI middleware (inside authentication) that puts the caller's id in the log context."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request with the caller's user_id attached to its log records."""
        fields: dict[str, object] = {}
        user = scope.get("user")
        if isinstance(user, TokenUser):
            fields["user_id"] = user.caller.user_id
        with log_context(**fields):
            await self.app(scope, receive, send)
