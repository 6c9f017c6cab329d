"""Job endpoints: submit, poll status, list."""

from __future__ import annotations

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from core import jobs
from core.cancel import cancel_job
from core.jobs import JobRequest, JobView
from core.limits import UserLimits
from web import bodies
from web.answers import job_body, json_response
from web.auth import caller_of
from web.etags import etags, job_etag
from web.live import LiveJobs
from web.longpoll import MAX_WAIT_SECONDS, changed_job
from web.params import page, path_uuid, query_int, read_body

TERMINAL_CACHE = "private, max-age=3600"
LIVE_CACHE = "no-cache"


async def submit_job(request: Request) -> Response:
    """POST /api/jobs: hold credits, queue the job, hand its turn (if any) to the sender."""
    caller = caller_of(request)
    body = await read_body(request, bodies.JobRequest)
    state = request.app.state
    job_request = JobRequest(
        user_id=caller.user_id,
        count=body.count,
        provider=state.settings.provider if body.provider is msgspec.UNSET else body.provider,
        idempotency_key=request.headers.get("idempotency-key"),
    )
    limits = UserLimits.from_settings(state.settings)
    submission = await run_in_threadpool(
        jobs.submit, state.database.sessions, state.settings, job_request, limits
    )
    if submission.turns:
        job = submission.job
        state.sender.offer(job.id, job.user_id, submission.turns)
    headers = {"Location": f"/api/job/{submission.job.id}"}
    if not submission.created:
        headers["Idempotent-Replayed"] = "true"
    return json_response(job_body(submission.job), 202, headers)


async def job_status(request: Request) -> Response:
    """GET /api/job/<id>[?wait=N]: the caller's job with an ETag; long-polls when asked."""
    caller = caller_of(request)
    job_id = path_uuid(request, "job_id")
    wait = query_int(request, "wait", 0, 0, MAX_WAIT_SECONDS)
    live: LiveJobs = request.app.state.live
    if wait:
        known = etags(request.headers.get("if-none-match", ""))
        job = await changed_job(live, caller.user_id, job_id, known, wait)
    else:
        job = await live.jobs.get(caller.user_id, job_id)
    return status_response(request, job)


async def cancel(request: Request) -> Response:
    """POST /api/job/<id>/cancel: 200 with the cancelled job, or 202 while its calls stop."""
    caller = caller_of(request)
    job_id = path_uuid(request, "job_id")
    job = await run_in_threadpool(
        cancel_job, request.app.state.database.sessions, caller.user_id, job_id
    )
    headers = {"Location": f"/api/job/{job.id}"}
    return json_response(job_body(job), 200 if job.terminal else 202, headers)


def list_jobs(request: Request) -> Response:
    """GET /api/jobs: the caller's jobs, newest first."""
    caller = caller_of(request)
    window = page(request)
    found, total = jobs.list_for_user(
        request.app.state.database.sessions, caller.user_id, window.limit, window.offset
    )
    items = [job_body(j) for j in found]
    return json_response(bodies.JobPage(items, total, window.limit, window.offset))


def status_response(request: Request, job: JobView) -> Response:
    """Answer a job's status, or 304 when the client already has this version."""
    etag = job_etag(job)
    headers = {"ETag": etag, "Cache-Control": TERMINAL_CACHE if job.terminal else LIVE_CACHE}
    if etag in etags(request.headers.get("if-none-match", "")):
        return Response(status_code=304, headers=headers)
    return json_response(job_body(job), headers=headers)
