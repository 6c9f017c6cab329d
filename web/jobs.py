"""Job endpoints: submit, poll status, list."""

from __future__ import annotations

import msgspec
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from core import jobs, tracing
from core.cancel import cancel_job, settle_cancelled
from core.job_list import list_jobs as list_jobs_of
from core.jobs import JobRequest, JobView
from core.limits import UserLimits
from core.retry import Links
from web.auth.backend import caller_of
from web.contract import bodies
from web.contract.answers import job_body, json_response
from web.contract.etags import etags, job_etag
from web.contract.pages import next_page, time_id, time_id_after, window
from web.contract.params import path_uuid, query_int, read_body
from web.live.hub import LiveJobs
from web.live.longpoll import MAX_WAIT_SECONDS, changed_job

TERMINAL_CACHE = "private, max-age=3600"
LIVE_CACHE = "no-cache"
NO_LINKS = Links()


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
    attributes: tracing.Attributes = {"user.id": str(caller.user_id), "job.requested": body.count}
    with tracing.span("tally.submit", attributes) as span:
        submission = await run_in_threadpool(
            jobs.submit, state.database.sessions, state.settings, job_request, limits
        )
        span.set_attributes({"job.id": str(submission.job.id), "job.created": submission.created})
        if submission.turns:  # the sender carries this span's context into the message
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
    return status_response(request, job, Links(job.retry_of, job.retried_by))


async def cancel(request: Request) -> Response:
    """POST /api/job/<id>/cancel: 200 with the cancelled job, or 202 while its calls stop."""
    caller = caller_of(request)
    job_id = path_uuid(request, "job_id")
    sessions = request.app.state.database.sessions
    job = await run_in_threadpool(cancel_job, sessions, caller.user_id, job_id)
    request.app.state.live.jobs.changed(job.id)  # read your own cancel, before its notification
    headers = {"Location": f"/api/job/{job.id}"}
    answer = json_response(job_body(job), 200 if job.terminal else 202, headers)
    if not job.terminal:
        # After the answer: slices a turn held while the cancel passed them by.
        answer.background = BackgroundTask(settle_cancelled, sessions, job.id)
    return answer


def list_jobs(request: Request) -> Response:
    """GET /api/jobs[?limit=&cursor=]: one page of the caller's jobs, newest first."""
    caller = caller_of(request)
    asked = window(request)
    after = time_id_after(request, asked, "jobs", caller.user_id)
    found = list_jobs_of(request.app.state.database.sessions, caller.user_id, asked.limit, after)
    following = next_page(request, asked, "jobs", caller.user_id, time_id(found.last))
    items = [job_body(j) for j in found.jobs]
    body = bodies.JobPage(items, found.total, asked.limit, following.url, following.cursor)
    return json_response(body, headers=following.headers)


def status_response(request: Request, job: JobView, links: Links = NO_LINKS) -> Response:
    """Answer a job's status, or 304 when the client already has this version.

    A finished job's ETag also names its retry, so a retry made later changes it; until
    then a finished job with failures is revalidated rather than cached.
    """
    etag = linked_etag(job, links)
    settled = job.terminal and (job.failures == 0 or links.retried_by is not None)
    headers = {"ETag": etag, "Cache-Control": TERMINAL_CACHE if settled else LIVE_CACHE}
    if etag in etags(request.headers.get("if-none-match", "")):
        return Response(status_code=304, headers=headers)
    return json_response(linked_body(job_body(job), links), headers=headers)


def linked_etag(job: JobView, links: Links) -> str:
    """The status ETag; a finished job's also changes when a retry of it is made."""
    etag = job_etag(job)
    if not job.terminal or links.retried_by is None:
        return etag
    return etag[:-1] + "-" + links.retried_by.hex[:8] + '"'


def linked_body(body: bodies.Job, links: Links) -> bodies.Job:
    """A job's body with the job it retries and the job retrying it."""
    if links == NO_LINKS:
        return body
    return msgspec.structs.replace(body, retry_of=links.retry_of, retried_by=links.retried_by)
