"""The operator API: create users, grant credits once per reference, issue tokens.

Open to admin tokens and to the service key (TALLY_SERVICE_KEY).
"""

from __future__ import annotations

import functools

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from core import credits, users
from web.auth.backend import admin_of
from web.contract import bodies
from web.contract.answers import json_response
from web.contract.params import path_uuid, read_body

NO_STORE = {"Cache-Control": "no-store"}


async def create_user(request: Request) -> Response:
    """POST /api/admin/users: a new user and its first token (shown once)."""
    admin_of(request)
    body = await read_body(request, bodies.UserRequest)
    user_id = None if body.id is msgspec.UNSET else body.id
    create = functools.partial(
        users.create_user,
        request.app.state.database.sessions,
        body.name,
        body.credits,
        is_admin=body.is_admin,
        user_id=user_id,
    )
    created = await run_in_threadpool(create)
    answer = bodies.CreatedUser(
        created.user_id, body.name, body.is_admin, created.token, created.token_id
    )
    return json_response(answer, 201, headers=NO_STORE)


async def grant_credits(request: Request) -> Response:
    """POST /api/admin/users/<id>/credits: add or refund credits once per reference."""
    admin_of(request)
    user_id = path_uuid(request, "user_id")
    body = await read_body(request, bodies.GrantRequest)
    granted = await run_in_threadpool(
        credits.grant_once,
        request.app.state.database.sessions,
        user_id,
        body.amount,
        body.reference,
        body.note,
    )
    answer = bodies.Grant(
        granted.user_id, granted.amount, granted.reference, granted.balance, granted.applied
    )
    return json_response(answer, 201 if granted.applied else 200, headers=NO_STORE)


async def issue_token(request: Request) -> Response:
    """POST /api/admin/users/<id>/tokens: another API token for the user (shown once)."""
    admin_of(request)
    user_id = path_uuid(request, "user_id")
    body = await read_body(request, bodies.TokenRequest)
    issued = await run_in_threadpool(
        users.issue, request.app.state.database.sessions, user_id, body.label
    )
    answer = bodies.IssuedToken(issued.id, issued.user_id, issued.token, issued.label)
    return json_response(answer, 201, headers=NO_STORE)
