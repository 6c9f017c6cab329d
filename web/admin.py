"""Admin endpoints: reconciliation reports."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from core.errors import InvalidInput, NotFound
from reconcile.report_store import get_report, list_reports
from web.auth.backend import admin_of
from web.contract import bodies
from web.contract.answers import json_response, report_body, report_summary
from web.contract.params import MAX_DRIFT_PAGE, MAX_OFFSET, REPORT_ID_PATTERN, page, query_int

REPORT_ID = re.compile(REPORT_ID_PATTERN)


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
    offset = query_int(request, "drift_offset", 0, 0, MAX_OFFSET)
    found = get_report(request.app.state.database.sessions, report_id, limit, offset)
    if found is None:
        raise NotFound("no such report")
    body = report_body(found, limit, offset)
    return json_response(body, headers={"Cache-Control": "no-cache"})


def _report_id(raw: str) -> int | None:
    if not REPORT_ID.fullmatch(raw):
        raise InvalidInput(
            'report_id must be a positive integer of at most 18 digits or "latest"',
            field="report_id",
        )
    return None if raw == "latest" else int(raw)
