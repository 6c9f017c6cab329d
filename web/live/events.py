"""Server-Sent Events: a job's status, pushed on every change until it is terminal."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from core.jobs import JobView
from web.auth.backend import caller_of
from web.contract.answers import encode, job_body
from web.contract.etags import job_etag
from web.contract.params import path_uuid
from web.live.hub import LiveJobs

KEEPALIVE_SECONDS = 15.0
RETRY_MILLISECONDS = 2000
# A stream ends after this long and the client reconnects (with Last-Event-ID), so that
# no response outlives a server's graceful shutdown by much.
STREAM_SECONDS = 55.0


def status_event(job: JobView) -> str:
    """One `status` event carrying the same JSON as GET /api/job/<id>."""
    return f"id: {job_etag(job)}\nevent: status\ndata: {encode(job_body(job))}\n\n"


async def job_events(request: Request) -> Response:
    """GET /api/job/<id>/events: `status` events, then `end` once terminal (reconnect if cut)."""
    caller = caller_of(request)
    job_id = path_uuid(request, "job_id")
    live: LiveJobs = request.app.state.live
    await live.jobs.get(caller.user_id, job_id)  # 404 before the stream starts
    stream = _stream(live, caller.user_id, job_id, request.headers.get("last-event-id"))
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(
    live: LiveJobs, user_id: uuid.UUID, job_id: uuid.UUID, last_sent: str | None
) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MILLISECONDS}\n\n"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STREAM_SECONDS
    with live.hub.watch(job_id) as topic:
        while loop.time() < deadline:
            version = topic.version
            job = await live.jobs.get(user_id, job_id)
            if job_etag(job) != last_sent:
                last_sent = job_etag(job)
                yield status_event(job)
            if job.terminal:
                yield "event: end\ndata: {}\n\n"
                return
            wait = min(KEEPALIVE_SECONDS, max(0.0, deadline - loop.time()))
            if not await topic.wait_beyond(version, wait):
                yield ": keep-alive\n\n"
