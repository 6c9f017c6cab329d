"""Admin endpoints: reconciliation reports."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from core.errors import InvalidInput, NotFound
from reconcile.report_store import get_report, list_reports
from web import bodies
from web.answers import json_response, report_body, report_summary
from web.auth import admin_of
from web.params import page, query_int

MAX_DRIFT_PAGE = 1000
MAX_REPORT_ID = 2**63 - 1


def reports(request: Request) -> Response:
    """GET /api/admin/reports: reports, newest first, without their drift rows."""
    admin_of(request)
    window = page(request)
    found, total = list_reports(request.app.state.database.sessions, window.limit, window.offset)
    items = [report_summary(r) for r in found]
    body = bodies.ReportPage(items, total, window.limit, window.offset)
    return json_response(body, headers={"Cache-Control": "no-cache"})


def report(request: Request) -> Response:
    """GET /api/admin/reports/<id or "latest">: one report with a page of its drift rows."""
    admin_of(request)
    report_id = _report_id(request.path_params["report_id"])
    limit = query_int(request, "drift_limit", 100, 1, MAX_DRIFT_PAGE)
    offset = query_int(request, "drift_offset", 0, 0, 10_000_000)
    found = get_report(request.app.state.database.sessions, report_id, limit, offset)
    if found is None:
        raise NotFound("no such report")
    body = report_body(found, limit, offset)
    return json_response(body, headers={"Cache-Control": "no-cache"})


def _report_id(raw: str) -> int | None:
    if raw == "latest":
        return None
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidInput('report_id must be an integer or "latest"', field="report_id") from exc
    if not 1 <= value <= MAX_REPORT_ID:
        raise InvalidInput("report_id is out of range", field="report_id")
    return value
