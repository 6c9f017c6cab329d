"""Webhook endpoints: register (the secret shown once), list, delete, log, test, replay."""

from __future__ import annotations

from typing import Any, cast

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from core import webhooks
from core.errors import InvalidInput
from core.webhook_address import check_url
from web.auth.backend import caller_of
from web.contract import bodies
from web.contract.answers import json_response
from web.contract.params import DEFAULT_PAGE, MAX_PAGE, path_uuid, query_int, read_body

MAX_DELIVERY_ID = 10**18 - 1  # 18 digits, as every integer parameter


async def create(request: Request) -> Response:
    """POST /api/webhooks: 201 with the endpoint and its signing secret (shown once)."""
    caller = caller_of(request)
    body = await read_body(request, bodies.WebhookRequest)
    settings = request.app.state.settings
    https_only = settings.environment != "development"
    url = await run_in_threadpool(check_url, body.url, settings.webhooks.allow_private, https_only)
    sessions = request.app.state.database.sessions
    made = await run_in_threadpool(
        webhooks.create_endpoint, sessions, settings.secret_box(), caller.user_id, url
    )
    headers = {"Location": f"/api/webhooks/{made.id}", "Cache-Control": "no-store"}
    return json_response(_endpoint(made), 201, headers)


async def list_endpoints(request: Request) -> Response:
    """GET /api/webhooks: the caller's endpoints (never their secrets)."""
    caller = caller_of(request)
    sessions = request.app.state.database.sessions
    found = await run_in_threadpool(webhooks.list_endpoints, sessions, caller.user_id)
    return json_response(bodies.WebhookList([_endpoint(e) for e in found]))


async def delete(request: Request) -> Response:
    """DELETE /api/webhooks/<id>: stop delivering there."""
    caller = caller_of(request)
    endpoint_id = path_uuid(request, "endpoint_id")
    sessions = request.app.state.database.sessions
    await run_in_threadpool(webhooks.delete_endpoint, sessions, caller.user_id, endpoint_id)
    return Response(status_code=204)


async def deliveries(request: Request) -> Response:
    """GET /api/webhooks/<id>/deliveries: the endpoint's delivery log, newest first."""
    caller = caller_of(request)
    endpoint_id = path_uuid(request, "endpoint_id")
    limit = query_int(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    before = query_int(request, "before", 0, 1, MAX_DELIVERY_ID) or None
    sessions = request.app.state.database.sessions
    found = await run_in_threadpool(
        webhooks.deliveries, sessions, caller.user_id, endpoint_id, limit, before
    )
    following = found[-1].id if len(found) == limit else None
    return json_response(bodies.DeliveryPage([_delivery(d) for d in found], following))


async def send_test(request: Request) -> Response:
    """POST /api/webhooks/<id>/test: queue a webhook.test event."""
    caller = caller_of(request)
    endpoint_id = path_uuid(request, "endpoint_id")
    sessions = request.app.state.database.sessions
    queued = await run_in_threadpool(webhooks.send_test, sessions, caller.user_id, endpoint_id)
    return json_response(_delivery(queued), 202)


async def replay(request: Request) -> Response:
    """POST /api/webhooks/<id>/deliveries/<delivery_id>/replay: send that event again."""
    caller = caller_of(request)
    endpoint_id = path_uuid(request, "endpoint_id")
    raw = str(request.path_params["delivery_id"])
    if not raw.isdigit() or not 0 < int(raw) <= MAX_DELIVERY_ID or raw.startswith("0"):
        raise InvalidInput("delivery_id must be a positive integer", field="delivery_id")
    sessions = request.app.state.database.sessions
    queued = await run_in_threadpool(
        webhooks.replay, sessions, caller.user_id, endpoint_id, int(raw)
    )
    return json_response(_delivery(queued), 202)


def _endpoint(view: webhooks.EndpointView) -> bodies.WebhookEndpoint:
    answer = bodies.WebhookEndpoint(
        id=view.id,
        url=view.url,
        created_at=view.created_at.isoformat(),
        failing_since=None if view.failing_since is None else view.failing_since.isoformat(),
    )
    if view.secret is not None:
        answer.secret = view.secret
    return answer


def _delivery(view: webhooks.DeliveryView) -> bodies.WebhookDelivery:
    return bodies.WebhookDelivery(
        id=view.id,
        event_id=view.event_id,
        origin=cast(Any, view.origin),
        status=cast(Any, view.status),
        attempts=view.attempts,
        response_status=view.response_status,
        last_error=view.last_error,
        next_attempt_at=view.next_attempt_at.isoformat(),
        created_at=view.created_at.isoformat(),
        finished_at=None if view.finished_at is None else view.finished_at.isoformat(),
    )
