"""The caller's own stats, credits and vault."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from core import credits, vault
from core.crypto import SecretBox
from core.stats import get_stats
from web.auth.backend import caller_of
from web.contract import bodies
from web.contract.answers import account_body, credits_body, json_response, stats_body
from web.contract.pages import id_after, next_page, time_id, time_id_after, window
from web.contract.params import path_uuid


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
    """GET /api/credits[?limit=&cursor=]: the balance and one page of the ledger, newest first."""
    caller = caller_of(request)
    asked = window(request)
    after = id_after(request, asked, "credits", caller.user_id)
    view = credits.view(request.app.state.database.sessions, caller.user_id, asked.limit, after)
    last = None if view.last is None else (view.last,)
    following = next_page(request, asked, "credits", caller.user_id, last)
    body = credits_body(view, asked.limit, following.url, following.cursor)
    return json_response(body, headers=following.headers)


def accounts(request: Request) -> Response:
    """GET /api/accounts[?limit=&cursor=]: one page of the caller's vault, without secrets."""
    caller = caller_of(request)
    asked = window(request)
    after = time_id_after(request, asked, "accounts", caller.user_id)
    sessions = request.app.state.database.sessions
    found = vault.list_accounts(sessions, caller.user_id, asked.limit, after)
    following = next_page(request, asked, "accounts", caller.user_id, time_id(found.last))
    items = [account_body(a) for a in found.accounts]
    body = bodies.AccountPage(items, found.total, asked.limit, following.url, following.cursor)
    return json_response(body, headers=following.headers)


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
