"""A job's accounts by cursor, and streamed exports (CSV, NDJSON) recorded as they run.

An export is a POST: secrets leave only when its body says `"include": "secrets"`, never
from a URL a prefetch or a log could replay. The stream reads keyset pages one at a time,
so memory stays flat however many accounts it sends; every row carries the cursor that
resumes after it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from core import export_cursor, export_format, export_rows, exports
from core.crypto import SecretBox
from core.database import SessionFactory
from core.errors import InvalidInput
from core.export_cursor import Position, Scope
from core.vault import AccountView
from web.auth.backend import caller_of
from web.contract import bodies
from web.contract.answers import account_body, json_response
from web.contract.params import DEFAULT_PAGE, MAX_PAGE, path_uuid, query_int, read_body
from web.delivery_metrics import ExportCounters

EXPORT_PAGE = 1000


@dataclass(frozen=True)
class ExportPlan:
    """What one export stream sends."""

    scope: Scope
    format: exports.Format
    box: SecretBox | None
    after: Position
    resumed: bool


async def job_accounts(request: Request) -> Response:
    """GET /api/job/<id>/accounts: one page of the job's accounts, without secrets."""
    caller = caller_of(request)
    scope = Scope(caller.user_id, path_uuid(request, "job_id"))
    limit = query_int(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    after = _cursor(request.query_params.get("cursor"), scope)
    sessions = request.app.state.database.sessions
    await run_in_threadpool(export_rows.check_scope, sessions, scope)
    rows = await run_in_threadpool(export_rows.page_after, sessions, scope, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    following = export_cursor.encode(scope, rows[-1].position(scope)) if more else None
    items = [account_body(_view(row)) for row in rows]
    return json_response(bodies.JobAccountPage(items, following, limit))


async def export_job(request: Request) -> Response:
    """POST /api/job/<id>/export: the job's accounts, streamed."""
    caller_of(request)
    job_id = path_uuid(request, "job_id")
    body = await read_body(request, bodies.ExportRequest)
    if body.job_id is not msgspec.UNSET and body.job_id != job_id:
        raise InvalidInput("job_id differs from the job in the path", field="job_id")
    body.job_id = job_id
    return await _export(request, body)


async def export(request: Request) -> Response:
    """POST /api/exports: one job's accounts or the whole vault, streamed."""
    caller_of(request)
    return await _export(request, await read_body(request, bodies.ExportRequest))


async def list_exports(request: Request) -> Response:
    """GET /api/exports: the caller's newest exports."""
    caller = caller_of(request)
    limit = query_int(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    sessions = request.app.state.database.sessions
    found = await run_in_threadpool(exports.list_exports, sessions, caller.user_id, limit)
    return json_response(bodies.ExportList([_info(record) for record in found]))


async def _export(request: Request, body: bodies.ExportRequest) -> Response:
    caller = caller_of(request)
    state = request.app.state
    job_id = None if body.job_id is msgspec.UNSET else body.job_id
    scope = Scope(caller.user_id, job_id)
    given = None if body.cursor is msgspec.UNSET else body.cursor
    box = state.settings.secret_box() if body.include == "secrets" else None
    plan = ExportPlan(scope, body.format, box, _cursor(given, scope), given is not None)
    sessions: SessionFactory = state.database.sessions
    await run_in_threadpool(export_rows.check_scope, sessions, scope)
    export_id = await run_in_threadpool(
        exports.start, sessions, scope, plan.format, box is not None, plan.resumed
    )
    counters: ExportCounters = state.export_counters
    counters.started(plan.format, box is not None)
    headers = {
        "Cache-Control": "no-store",
        "Content-Disposition": f'attachment; filename="accounts-{export_id}.{plan.format}"',
        "X-Export-Id": str(export_id),
    }
    stream = _stream(sessions, export_id, plan, counters)
    return StreamingResponse(
        stream, media_type=export_format.MEDIA_TYPES[plan.format], headers=headers
    )


async def _stream(
    sessions: SessionFactory, export_id: uuid.UUID, plan: ExportPlan, counters: ExportCounters
) -> AsyncIterator[bytes]:
    ending: exports.Ending = "interrupted"
    try:
        yield export_format.header(plan.format, plan.box is not None)
        after = plan.after
        while True:
            rows = await run_in_threadpool(
                export_rows.page_after, sessions, plan.scope, after, EXPORT_PAGE
            )
            if not rows:
                break
            yield await run_in_threadpool(
                export_format.render, rows, plan.scope, plan.format, plan.box
            )
            after = rows[-1].position(plan.scope)
            await run_in_threadpool(exports.progress, sessions, export_id, len(rows))
            counters.sent(len(rows))
        ending = "done"
    finally:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(exports.finish, sessions, export_id, ending)


def _cursor(given: str | None, scope: Scope) -> Position:
    return export_cursor.START if given is None else export_cursor.decode(given, scope)


def _view(row: export_rows.AccountRow) -> AccountView:
    return AccountView(
        id=row.id,
        job_id=row.job_id,
        item_index=row.item_index,
        provider=row.provider,
        external_id=row.external_id,
        username=row.username,
        metadata=row.metadata,
        created_at=row.created_at,
    )


def _info(record: exports.ExportRecord) -> bodies.ExportInfo:
    return bodies.ExportInfo(
        id=record.id,
        job_id=record.job_id,
        format=record.format,
        secrets=record.secrets,
        status=record.status,
        accounts=record.accounts,
        resumed=record.resumed,
        started_at=record.started_at.isoformat(),
        finished_at=None if record.finished_at is None else record.finished_at.isoformat(),
    )
