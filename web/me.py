"""The caller's own stats, credits and vault."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from core import credits, vault
from core.crypto import SecretBox
from core.stats import get_stats
from web import bodies
from web.answers import account_body, credits_body, json_response, stats_body
from web.auth import caller_of
from web.params import page, path_uuid


def whoami(request: Request) -> Response:
    """GET /api/me: the caller behind the token."""
    caller = caller_of(request)
    me = bodies.Me(user_id=caller.user_id, name=caller.name, is_admin=caller.is_admin)
    return json_response(me, headers={"Cache-Control": "no-cache"})


def stats(request: Request) -> Response:
    """GET /api/stats: the stats card."""
    caller = caller_of(request)
    view = get_stats(request.app.state.database.sessions, caller.user_id)
    return json_response(stats_body(view), headers={"Cache-Control": "no-cache"})


def credits_view(request: Request) -> Response:
    """GET /api/credits: the balance and one page of the ledger, newest first."""
    caller = caller_of(request)
    window = page(request)
    sessions = request.app.state.database.sessions
    view = credits.view(sessions, caller.user_id, window.limit, window.offset)
    return json_response(credits_body(view, window.limit, window.offset))


def accounts(request: Request) -> Response:
    """GET /api/accounts: the caller's vault, without secrets."""
    caller = caller_of(request)
    window = page(request)
    found, total = vault.list_accounts(
        request.app.state.database.sessions, caller.user_id, window.limit, window.offset
    )
    items = [account_body(a) for a in found]
    return json_response(bodies.AccountPage(items, total, window.limit, window.offset))


def delete_account(request: Request) -> Response:
    """DELETE /api/accounts/<id>: remove one of the caller's accounts."""
    caller = caller_of(request)
    vault.delete_account(
        request.app.state.database.sessions, caller.user_id, path_uuid(request, "account_id")
    )
    return Response(status_code=204)


def reveal_secret(request: Request) -> Response:
    """POST /api/accounts/<id>/reveal: the owner explicitly asks for one secret."""
    caller = caller_of(request)
    account_id = path_uuid(request, "account_id")
    state = request.app.state
    box = SecretBox(state.settings.fernet_key)
    secret = vault.reveal_secret(state.database.sessions, box, caller.user_id, account_id)
    return json_response(bodies.Secret(account_id, secret), headers={"Cache-Control": "no-store"})
