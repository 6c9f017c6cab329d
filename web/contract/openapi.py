"""The API description (OpenAPI 3.1) as data, served at /openapi.json and shown at /docs."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from core.cursors import CURSOR_PATTERN, MAX_CURSOR_LENGTH
from core.jobs import MAX_IDEMPOTENCY_KEY_LENGTH
from core.settings import Settings
from core.vocabulary import LABELS
from web import admin, dashboard, exports, health, jobs, me, metrics, operator, retry, webhooks
from web.auth import tokens
from web.auth.tokens import TOKEN_ID_PATTERN
from web.contract import bodies
from web.contract.answers import JSON, json_response
from web.contract.params import (
    MAX_BODY_BYTES,
    MAX_DRIFT_PAGE,
    MAX_OFFSET,
    MAX_PAGE,
    REPORT_ID_PATTERN,
)
from web.live import events
from web.webhooks import MAX_DELIVERY_ID

STATIC = Path(__file__).parent.parent / "static"
REF_TEMPLATE = "#/components/schemas/{name}"
Operation = dict[str, Any]
# What an operation is keyed by: a route's endpoint function, or a mount's name.
Described = Callable[..., Any] | str
# Where a schema is a contract type (a Struct), build_spec puts a reference to its component.
Schema = dict[str, Any] | type


def _content(schema: Schema, media_type: str = JSON) -> dict[str, Any]:
    return {media_type: {"schema": schema}}


def _body(schema: Schema, description: str) -> dict[str, Any]:
    return {"description": description, "content": _content(schema)}


def _error(description: str) -> dict[str, Any]:
    return _body(bodies.Error, description)


# Only the canonical spelling: lower case, dashed (no braces, URN prefix or upper case).
UUID_PARAM = {
    "type": "string",
    "format": "uuid",
    "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
}
LIMIT_PARAM = {
    "name": "limit",
    "in": "query",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
}
PAGE_PARAMS = [
    LIMIT_PARAM,
    {
        "name": "offset",
        "in": "query",
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
    },
]
# The jobs, vault and ledger lists page by cursor only (keyset: a deep page costs what the
# first does); `offset` there is a 400. Reconciliation reports, which retention keeps few,
# still page by limit/offset.
CURSOR_PARAMS = [
    LIMIT_PARAM,
    {
        "name": "cursor",
        "in": "query",
        "description": "Opaque: the `next_cursor` of the previous page (or follow `next`, or "
        'the `Link: <...>; rel="next"` header). A cursor that was altered, or issued for '
        "another list or user, is a 400. `offset` is not accepted on this list (400).",
        "schema": {
            "type": "string",
            "maxLength": MAX_CURSOR_LENGTH,
            "pattern": CURSOR_PATTERN,
        },
    },
]
LINK = {
    "Link": {
        "description": 'RFC 8288 `<URL>; rel="next"` when another page follows.',
        "schema": {"type": "string"},
    }
}


def _cursor_page(schema: Schema, description: str) -> dict[str, Any]:
    return {**_body(schema, description), "headers": LINK}


RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
COMMON_ERRORS = {
    "401": _error("No valid bearer token."),
    "400": _error("Malformed input."),
    "429": {**_error("Too many failed authentications from this address."), "headers": RETRY_AFTER},
    "503": {**_error("The database is unavailable."), "headers": RETRY_AFTER},
}
# Each event of a job's stream (OpenAPI 3.1: the schema of a text/event-stream is one event's).
JOB_EVENT = {
    "oneOf": [
        {
            "type": "object",
            "properties": {
                "event": {"const": "status"},
                "id": {"type": "string", "description": "The job's ETag."},
                "data": {
                    "type": "string",
                    "contentMediaType": JSON,
                    "contentSchema": bodies.Job,
                },
            },
            "required": ["event", "data"],
        },
        {
            "type": "object",
            "properties": {"event": {"const": "end"}, "data": {"const": "{}"}},
            "required": ["event", "data"],
        },
    ]
}


def _path_param(name: str, schema: dict[str, Any] = UUID_PARAM) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> Operation:
    return {"summary": summary, "responses": {**responses, **COMMON_ERRORS}, **extra}


def _public(summary: str, responses: dict[str, Any]) -> Operation:
    return {"summary": summary, "security": [], "responses": responses}


def _probe(summary: str, responses: dict[str, Any]) -> Operation:
    return {
        "summary": summary + " Open without a token only in development with no "
        "TALLY_METRICS_TOKEN set.",
        "security": [{"scrape": []}],
        "responses": {**responses, "401": _error("No valid scrape token.")},
    }


JOB_PARAM = _path_param("job_id")
ACCOUNT_PARAM = _path_param("account_id")
STATUS_OP = _op(
    "A job's status. With `wait`, long-polls: answers as soon as the status or progress "
    "differs from the If-None-Match ETag (or from the state when the request arrived), "
    "or after `wait` seconds with the unchanged status (304 if the ETag still matches).",
    {
        "200": _body(bodies.Job, "The job; ETag header set."),
        "304": {"description": "Not modified: the If-None-Match ETag is current."},
        "404": _error("No such job for this caller."),
    },
    parameters=[
        JOB_PARAM,
        {"name": "wait", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 60}},
        {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}},
    ],
)


def openapi_json(request: Request) -> Response:
    """GET /openapi.json: the API description."""
    return json_response(build_spec(request.app.routes, request.app.state.settings))


def docs(request: Request) -> Response:
    """GET /docs: a page that renders /openapi.json readably."""
    return FileResponse(STATIC / "docs.html", media_type="text/html")


# Each route's description, keyed by what the route table (web/app.py) names: a route's
# endpoint function, a mount's name. The table lists paths once; a route without an entry
# here stops the app from starting (UndescribedRoute).
OPERATIONS: dict[Described, Operation] = {
    dashboard.index: _public("The dashboard page (HTML).", {"200": {"description": "HTML"}}),
    docs: _public("This description, readable (HTML).", {"200": {"description": "HTML"}}),
    openapi_json: _public("This description.", {"200": _body({"type": "object"}, "OpenAPI 3.1")}),
    "static": {
        **_public(
            "The dashboard's static files.",
            {"200": {"description": "File"}, "404": _error("No such file.")},
        ),
        "parameters": [_path_param("path", {"type": "string"})],
    },
    health.healthz: _public("Liveness.", {"200": _body(bodies.Health, "Up.")}),
    health.readyz: _probe(
        "Readiness: the database answers, a reconcile daemon beats and the oldest unapplied "
        "outbox row is younger than TALLY_READY_MAX_OUTBOX_AGE. The daemon's host and pid "
        "are shown only to the scrape token.",
        {"200": _body(bodies.Ready, "Ready."), "503": _body(bodies.NotReady, "Not ready.")},
    ),
    metrics.metrics: _probe(
        "Prometheus metrics.", {"200": {"description": "text/plain exposition format"}}
    ),
    jobs.submit_job: _op(
        "Submit a job: holds `count * price` credits and queues it.",
        {
            "202": _body(bodies.Job, "Accepted; Location header names the status URL."),
            "402": _error("Insufficient credits."),
            "413": _error(f"The body is larger than {MAX_BODY_BYTES} bytes."),
            "422": _error("The Idempotency-Key was already used with a different body."),
        },
        parameters=[
            {
                "name": "Idempotency-Key",
                "in": "header",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH,
                },
            }
        ],
        requestBody={"required": True, "content": _content(bodies.JobRequest)},
    ),
    jobs.list_jobs: _op(
        "The caller's jobs, newest first, by cursor; `total` is every job of the caller.",
        {"200": _cursor_page(bodies.JobPage, "One page.")},
        parameters=CURSOR_PARAMS,
    ),
    jobs.job_status: STATUS_OP,
    events.job_events: _op(
        "Server-Sent Events: `status` events (the Job JSON, id = ETag) on every change, "
        "then `end` once the job is terminal.",
        {
            "200": {
                "description": "text/event-stream; each `status` event's data is a Job.",
                "content": _content(JOB_EVENT, "text/event-stream"),
            },
            "404": _error("No such job for this caller."),
        },
        parameters=[JOB_PARAM, {"name": "Last-Event-ID", "in": "header", "schema": {}}],
    ),
    jobs.cancel: _op(
        "Cancel a job: no new provider call starts for it; calls in flight finish and "
        "their accounts are kept. A queued job is cancelled at once (200); a running one "
        "answers 202 at once and becomes `cancelled` once its calls in flight have finished, "
        "or `completed` with a `note` when every item had been attempted before the cancel "
        "took effect. Cancelling a job again answers it again (200).",
        {
            "200": _body(bodies.Job, "The job, cancelled."),
            "202": _body(bodies.Job, "Cancel requested; the job stops shortly."),
            "404": _error("No such job for this caller."),
            "409": _error("The job had already completed or failed."),
        },
        parameters=[JOB_PARAM],
    ),
    me.whoami: _op(
        "Who the token belongs to, and whether it may read admin endpoints.",
        {"200": _body(bodies.Me, "The caller.")},
    ),
    me.stats: _op("The caller's stats card.", {"200": _body(bodies.Stats, "Stats.")}),
    me.credits_view: _op(
        "The balance and one page of the ledger, newest first, by cursor.",
        {"200": _cursor_page(bodies.Credits, "Credits.")},
        parameters=CURSOR_PARAMS,
    ),
    me.accounts: _op(
        "The caller's vault, without secrets, newest first, by cursor; `total` is the stats "
        "card's `business_centers` (right once the outbox apply has caught up).",
        {"200": _cursor_page(bodies.AccountPage, "One page.")},
        parameters=CURSOR_PARAMS,
    ),
    me.delete_account: _op(
        "Remove an account from the caller's vault.",
        {"204": {"description": "Removed."}, "404": _error("No such account.")},
        parameters=[ACCOUNT_PARAM],
    ),
    me.reveal_secret: _op(
        "The owner explicitly asks for one account's secret.",
        {"200": _body(bodies.Secret, "The secret."), "404": _error("No such account.")},
        parameters=[ACCOUNT_PARAM],
    ),
    admin.reports: _op(
        "Reconciliation reports, newest first (admin).",
        {"200": _body(bodies.ReportPage, "One page."), "403": _error("Not an admin.")},
        parameters=PAGE_PARAMS,
    ),
    admin.report: _op(
        'One reconciliation report (an id, or "latest") with a page of its drifts (admin).',
        {
            "200": _body(bodies.Report, "The report."),
            "403": _error("Not an admin."),
            "404": _error("No such report."),
        },
        parameters=[
            _path_param("report_id", {"type": "string", "pattern": REPORT_ID_PATTERN}),
            {
                "name": "drift_limit",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_DRIFT_PAGE},
            },
            {
                "name": "drift_offset",
                "in": "query",
                "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
            },
        ],
    ),
    operator.create_user: _op(
        "Create a user (admin token or service key), optionally with the frontend's id for "
        "them; answers its first API token, shown once.",
        {
            "201": _body(bodies.CreatedUser, "Created."),
            "403": _error("Not an admin or the service key."),
            "409": _error("A user with this id exists."),
            "413": _error(f"The body is larger than {MAX_BODY_BYTES} bytes."),
        },
        requestBody={"required": True, "content": _content(bodies.UserRequest)},
    ),
    operator.grant_credits: _op(
        "Grant credits, or refund them with a negative amount, once per `reference` (a payment "
        "id): a repeat answers 200 with `applied: false` and changes nothing (admin token or "
        "service key).",
        {
            "201": _body(bodies.Grant, "Applied."),
            "200": _body(bodies.Grant, "This reference was applied before; nothing changed."),
            "403": _error("Not an admin or the service key."),
            "404": _error("No such user."),
            "409": _error(
                "The reference was used with another user or amount, or a refund exceeds the "
                "balance."
            ),
            "413": _error(f"The body is larger than {MAX_BODY_BYTES} bytes."),
        },
        parameters=[_path_param("user_id")],
        requestBody={"required": True, "content": _content(bodies.GrantRequest)},
    ),
    operator.issue_token: _op(
        "Issue another API token for a user, shown once (admin token or service key).",
        {
            "201": _body(bodies.IssuedToken, "Issued."),
            "403": _error("Not an admin or the service key."),
            "404": _error("No such user."),
            "413": _error(f"The body is larger than {MAX_BODY_BYTES} bytes."),
        },
        parameters=[_path_param("user_id")],
        requestBody={"required": True, "content": _content(bodies.TokenRequest)},
    ),
    tokens.list_tokens: _op(
        "The caller's API tokens, newest first, revoked ones included (never the tokens).",
        {"200": _body(bodies.TokenList, "The tokens."), "403": _error("The service key.")},
    ),
    tokens.revoke_token: _op(
        "Revoke one of the caller's API tokens (an admin or the service key: anyone's). Every "
        "web process stops accepting it within 5 s.",
        {
            "204": {"description": "Revoked."},
            "404": _error("No such live token for this caller."),
        },
        parameters=[_path_param("token_id", {"type": "string", "pattern": TOKEN_ID_PATTERN})],
    ),
}


EXPORT_STREAM = {
    "description": "The accounts, streamed; each row carries the cursor that resumes after it.",
    "content": {
        "text/csv": {"schema": {"type": "string"}},
        "application/x-ndjson": {"schema": {"type": "string"}},
    },
    "headers": {"X-Export-Id": {"description": "The export's record.", "schema": UUID_PARAM}},
}
EXPORT_ERRORS = {
    "200": EXPORT_STREAM,
    "404": _error("No such job for this caller."),
    "409": _error("Another export of the caller is running."),
    "413": _error(f"The body is larger than {MAX_BODY_BYTES} bytes."),
}
ENDPOINT_PARAM = _path_param("endpoint_id")
CURSOR_PARAM = {"name": "cursor", "in": "query", "schema": {"type": "string", "maxLength": 400}}
OPERATIONS.update(
    {
        retry.retry: _op(
            "Retry a finished job's failed items as a child job: credits held anew; a repeat "
            "answers the same child.",
            {
                "201": _body(bodies.Job, "The child job; Location names its status URL."),
                "200": _body(bodies.Job, "The child made by an earlier retry."),
                "402": _error("Insufficient credits."),
                "404": _error("No such job for this caller."),
                "409": _error("The job is unfinished, has no failures, or was cancelled."),
                "422": _error("The retry's key names another request."),
            },
            parameters=[JOB_PARAM],
        ),
        exports.job_accounts: _op(
            "One page of a job's accounts in item order, without secrets, by cursor.",
            {
                "200": _body(bodies.JobAccountPage, "One page."),
                "404": _error("No such job for this caller."),
            },
            parameters=[JOB_PARAM, LIMIT_PARAM, CURSOR_PARAM],
        ),
        exports.export_job: _op(
            "Export a job's accounts (CSV or NDJSON), with secrets only when asked; recorded.",
            EXPORT_ERRORS,
            parameters=[JOB_PARAM],
            requestBody={"required": True, "content": _content(bodies.ExportRequest)},
        ),
        exports.export: _op(
            "Export a job's accounts or the whole vault (CSV or NDJSON), with secrets only "
            "when asked; recorded.",
            EXPORT_ERRORS,
            requestBody={"required": True, "content": _content(bodies.ExportRequest)},
        ),
        webhooks.create: _op(
            "Register a webhook endpoint; the answer carries its signing secret, shown once. "
            "Refused: not https outside development, longer than 2048 characters, or resolving "
            "to a loopback, private or link-local address (unless TALLY_WEBHOOK_ALLOW_PRIVATE).",
            {
                "201": _body(bodies.WebhookEndpoint, "Registered."),
                "413": _error(f"The body is larger than {MAX_BODY_BYTES} bytes."),
            },
            requestBody={"required": True, "content": _content(bodies.WebhookRequest)},
        ),
        webhooks.list_endpoints: _op(
            "The caller's webhook endpoints (never their secrets).",
            {"200": _body(bodies.WebhookList, "The endpoints.")},
        ),
        webhooks.delete: _op(
            "Stop delivering to an endpoint.",
            {"204": {"description": "Deleted."}, "404": _error("No such endpoint.")},
            parameters=[ENDPOINT_PARAM],
        ),
        webhooks.deliveries: _op(
            "An endpoint's delivery log, newest first.",
            {"200": _body(bodies.DeliveryPage, "One page."), "404": _error("No such endpoint.")},
            parameters=[
                ENDPOINT_PARAM,
                LIMIT_PARAM,
                {
                    "name": "before",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_DELIVERY_ID},
                },
            ],
        ),
        webhooks.send_test: _op(
            "Queue a webhook.test event for an endpoint.",
            {"202": _body(bodies.WebhookDelivery, "Queued."), "404": _error("No such endpoint.")},
            parameters=[ENDPOINT_PARAM],
        ),
        webhooks.replay: _op(
            "Send one delivery's event again, with the same event id.",
            {
                "202": _body(bodies.WebhookDelivery, "Queued."),
                "404": _error("No such endpoint or delivery."),
            },
            parameters=[
                ENDPOINT_PARAM,
                _path_param("delivery_id", {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}),
            ],
        ),
        exports.list_exports: _op(
            "The caller's newest exports: what, when, how many accounts, with or without secrets.",
            {"200": _body(bodies.ExportList, "The exports.")},
            parameters=[LIMIT_PARAM],
        ),
    }
)


OPERATIONS[jobs.submit_job]["responses"]["429"] = {
    **_error(
        "Too many failed authentications from this address, too many of the caller's jobs "
        "unfinished (TALLY_USER_MAX_UNFINISHED_JOBS), or too many submitted in the last "
        "minute (TALLY_USER_SUBMITS_PER_MINUTE)."
    ),
    "headers": RETRY_AFTER,
}


class UndescribedRoute(LookupError):
    """A route of the table has no description in OPERATIONS."""


def route_keys(routes: Iterable[BaseRoute]) -> list[tuple[str, str, Described]]:
    """The (path, method) pairs the app answers, each with what its description is keyed by;
    a static mount counts as GET {mount}/{path}."""
    found: list[tuple[str, str, Described]] = []
    for route in routes:
        if isinstance(route, Mount):
            found.append((route.path + "/{path}", "get", route.name or route.path))
        elif isinstance(route, Route):
            methods = sorted(m.lower() for m in (route.methods or ["GET"]) if m != "HEAD")
            found.extend((route.path, method, route.endpoint) for method in methods)
    return found


def route_operations(routes: Iterable[BaseRoute]) -> list[tuple[str, str]]:
    """The (path, method) pairs the app answers; a static mount counts as /static/{path}."""
    return [(path, method) for path, method, _ in route_keys(routes)]


def described_paths(routes: Iterable[BaseRoute]) -> dict[str, dict[str, Operation]]:
    """Each route's operation, by path and method; an endpoint the table routes again (an alias
    path) is described as the same as its first path. Raises UndescribedRoute."""
    paths: dict[str, dict[str, Operation]] = {}
    first_path: dict[Described, str] = {}
    for path, method, key in route_keys(routes):
        operation = OPERATIONS.get(key)
        if operation is None:
            raise UndescribedRoute(f"{method.upper()} {path} has no description in OPERATIONS")
        seen = first_path.setdefault(key, path)
        if seen != path:
            operation = {**operation, "summary": f"Same as {seen}."}
        paths.setdefault(path, {})[method] = operation
    return paths


def _contract_types(node: object) -> Iterator[type]:
    if isinstance(node, type):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _contract_types(value)
    elif isinstance(node, list):
        for value in node:
            yield from _contract_types(value)


@functools.cache
def components() -> tuple[dict[type, dict[str, Any]], dict[str, Any]]:
    """Each contract type the operations use, with its reference, and the components."""
    types = list(dict.fromkeys(_contract_types(OPERATIONS)))
    references, schemas = msgspec.json.schema_components(types, ref_template=REF_TEMPLATE)
    return dict(zip(types, references, strict=True)), _labelled(schemas)


def _labelled(schemas: dict[str, Any]) -> dict[str, Any]:
    """Each vocabulary enum's components with the words people read for its values."""
    found = dict(schemas)
    for kind, labels in LABELS.items():
        if kind.__name__ in found:
            words = {str(value): label for value, label in labels.items()}
            found[kind.__name__] = {**found[kind.__name__], "x-labels": words}
    return found


def _referenced(node: Any, references: dict[type, dict[str, Any]]) -> Any:
    if isinstance(node, type):
        return references[node]
    if isinstance(node, dict):
        return {key: _referenced(value, references) for key, value in node.items()}
    if isinstance(node, list):
        return [_referenced(value, references) for value in node]
    return node


def _with_settings(schemas: dict[str, Any], settings: Settings | None) -> dict[str, Any]:
    """The components with the submit rules this server's settings set: count and providers."""
    if settings is None:
        return schemas
    submit = copy.deepcopy(schemas["JobRequest"])
    submit["properties"]["count"]["maximum"] = settings.max_job_count
    submit["properties"]["provider"]["enum"] = list(settings.offered_providers)
    return {**schemas, "JobRequest": submit}


def build_spec(routes: Iterable[BaseRoute], settings: Settings | None = None) -> dict[str, Any]:
    """The OpenAPI document for exactly the routes given; each must be described."""
    references, schemas = components()
    schemas = _with_settings(schemas, settings)
    paths = _referenced(described_paths(routes), references)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tally",
            "version": "0.1.0",
            "description": "Bulk account jobs with exact, server-side statistics. Every /api "
            "endpoint needs `Authorization: Bearer <token>`; errors are "
            '`{"error": {"code", "message"}}`.',
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token (tly_...), a JWT of the frontend's sign-in "
                    "service (sub = the user's id), or, for /api/admin, the service key.",
                },
                "scrape": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The operator's scrape token, TALLY_METRICS_TOKEN.",
                },
            },
        },
        "security": [{"bearer": []}],
    }
