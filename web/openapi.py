"""The API description (OpenAPI 3.1) as data, served at /openapi.json and shown at /docs."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from web.schemas import SCHEMAS

STATIC = Path(__file__).parent / "static"
JSON = "application/json"
Operation = dict[str, Any]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref(schema)}}}


def _error(description: str) -> dict[str, Any]:
    return _body("Error", description)


UUID_PARAM = {"type": "string", "format": "uuid"}
PAGE_PARAMS = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
]
COMMON_ERRORS = {"401": _error("No valid bearer token."), "400": _error("Malformed input.")}


def _path_param(name: str, schema: dict[str, Any] = UUID_PARAM) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> Operation:
    return {"summary": summary, "responses": {**responses, **COMMON_ERRORS}, **extra}


def _public(summary: str, responses: dict[str, Any]) -> Operation:
    return {"summary": summary, "security": [], "responses": responses}


JOB_PARAM = _path_param("job_id")
ACCOUNT_PARAM = _path_param("account_id")
STATUS_OP = _op(
    "A job's status. With `wait`, long-polls: answers as soon as the status or progress "
    "differs from the If-None-Match ETag (or from the state when the request arrived), "
    "or after `wait` seconds with the unchanged status (304 if the ETag still matches).",
    {
        "200": _body("Job", "The job; ETag header set."),
        "304": {"description": "Not modified: the If-None-Match ETag is current."},
        "404": _error("No such job for this caller."),
    },
    parameters=[
        JOB_PARAM,
        {"name": "wait", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 60}},
        {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}},
    ],
)

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("/", "get"): _public("The dashboard page (HTML).", {"200": {"description": "HTML"}}),
    ("/docs", "get"): _public(
        "This description, readable (HTML).", {"200": {"description": "HTML"}}
    ),
    ("/openapi.json", "get"): _public("This description.", {"200": {"description": "OpenAPI"}}),
    ("/static/{path}", "get"): _public(
        "The dashboard's static files.", {"200": {"description": "File"}, "404": _error("None.")}
    ),
    ("/healthz", "get"): _public("Liveness.", {"200": _body("Health", "Up.")}),
    ("/readyz", "get"): _public(
        "Readiness: the database answers; outbox backlog.",
        {"200": _body("Ready", "Ready."), "503": _body("Health", "Not ready.")},
    ),
    ("/metrics", "get"): _public(
        "Prometheus metrics.", {"200": {"description": "text/plain exposition format"}}
    ),
    ("/api/jobs", "post"): _op(
        "Submit a job: holds `count * price` credits and queues it.",
        {
            "202": _body("Job", "Accepted; Location header names the status URL."),
            "402": _error("Insufficient credits."),
        },
        parameters=[{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
        requestBody={"required": True, "content": {JSON: {"schema": _ref("JobRequest")}}},
    ),
    ("/api/jobs", "get"): _op(
        "The caller's jobs, newest first.",
        {"200": _body("JobPage", "One page.")},
        parameters=PAGE_PARAMS,
    ),
    ("/api/job/{job_id}", "get"): STATUS_OP,
    ("/api/jobs/{job_id}", "get"): {**STATUS_OP, "summary": "Same as /api/job/{job_id}."},
    ("/api/job/{job_id}/events", "get"): _op(
        "Server-Sent Events: `status` events (the Job JSON, id = ETag) on every change, "
        "then `end` once the job is terminal.",
        {
            "200": {"description": "text/event-stream", "content": {"text/event-stream": {}}},
            "404": _error("No such job for this caller."),
        },
        parameters=[JOB_PARAM, {"name": "Last-Event-ID", "in": "header", "schema": {}}],
    ),
    ("/api/stats", "get"): _op("The caller's stats card.", {"200": _body("Stats", "Stats.")}),
    ("/api/credits", "get"): _op(
        "Balance and recent ledger entries.", {"200": _body("Credits", "Credits.")}
    ),
    ("/api/accounts", "get"): _op(
        "The caller's vault, without secrets.",
        {"200": _body("AccountPage", "One page.")},
        parameters=PAGE_PARAMS,
    ),
    ("/api/accounts/{account_id}", "delete"): _op(
        "Remove an account from the caller's vault.",
        {"204": {"description": "Removed."}, "404": _error("No such account.")},
        parameters=[ACCOUNT_PARAM],
    ),
    ("/api/accounts/{account_id}/reveal", "post"): _op(
        "The owner explicitly asks for one account's secret.",
        {"200": _body("Secret", "The secret."), "404": _error("No such account.")},
        parameters=[ACCOUNT_PARAM],
    ),
    ("/api/admin/reports", "get"): _op(
        "Reconciliation reports, newest first (admin).",
        {"200": _body("ReportPage", "One page."), "403": _error("Not an admin.")},
        parameters=PAGE_PARAMS,
    ),
    ("/api/admin/reports/{report_id}", "get"): _op(
        'One reconciliation report (an id, or "latest") with a page of its drifts (admin).',
        {
            "200": _body("Report", "The report."),
            "403": _error("Not an admin."),
            "404": _error("No such report."),
        },
        parameters=[
            _path_param("report_id", {"type": "string", "pattern": "^([0-9]+|latest)$"}),
            {"name": "drift_limit", "in": "query", "schema": {"type": "integer", "maximum": 1000}},
            {"name": "drift_offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
        ],
    ),
}


def route_operations(routes: Iterable[BaseRoute]) -> list[tuple[str, str]]:
    """The (path, method) pairs the app answers; a static mount counts as /static/{path}."""
    found: list[tuple[str, str]] = []
    for route in routes:
        if isinstance(route, Mount):
            found.append((route.path + "/{path}", "get"))
        elif isinstance(route, Route):
            methods = sorted(m.lower() for m in (route.methods or ["GET"]) if m != "HEAD")
            found.extend((route.path, method) for method in methods)
    return found


def build_spec(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI document for exactly the routes given (undescribed ones are left out)."""
    paths: dict[str, dict[str, Any]] = {}
    for path, method in route_operations(routes):
        operation = OPERATIONS.get((path, method))
        if operation is not None:
            paths.setdefault(path, {})[method] = operation
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
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def openapi_json(request: Request) -> Response:
    """GET /openapi.json: the API description."""
    return JSONResponse(build_spec(request.app.routes))


def docs(request: Request) -> Response:
    """GET /docs: a page that renders /openapi.json readably."""
    return FileResponse(STATIC / "docs.html", media_type="text/html")
