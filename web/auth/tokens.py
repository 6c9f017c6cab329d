"""The caller's API tokens: list them, revoke one (operators may revoke anyone's)."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from core import users
from core.errors import InvalidInput
from web.auth.backend import caller_of, is_operator
from web.contract import bodies
from web.contract.answers import json_response

TOKEN_ID_PATTERN = "^[1-9][0-9]{0,17}$"
TOKEN_ID = re.compile(TOKEN_ID_PATTERN)


def list_tokens(request: Request) -> Response:
    """GET /api/tokens: the caller's tokens, newest first, never the tokens themselves."""
    caller = caller_of(request)
    found = users.list_tokens(request.app.state.database.sessions, caller.user_id)
    items = [
        bodies.TokenInfo(
            t.id,
            t.label,
            t.created_at.isoformat(),
            t.revoked_at.isoformat() if t.revoked_at else None,
        )
        for t in found
    ]
    return json_response(bodies.TokenList(items), headers={"Cache-Control": "no-cache"})


def revoke_token(request: Request) -> Response:
    """DELETE /api/tokens/<id>: revoke one of the caller's tokens (an operator's: anyone's)."""
    raw = str(request.path_params["token_id"])
    owner = None if is_operator(request) else caller_of(request).user_id
    if not TOKEN_ID.fullmatch(raw):
        raise InvalidInput("token_id must be a positive integer of at most 18 digits", "token_id")
    token_hash = users.revoke_token(request.app.state.database.sessions, int(raw), owner)
    request.app.state.authentication.forget(token_hash)
    return Response(status_code=204)


def _when(token: users.TokenView) -> str | None:
    return token.revoked_at.isoformat() if token.revoked_at else None
