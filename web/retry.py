"""POST /api/job/<id>/retry: a child job of exactly a finished job's failed items."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from core.limits import UserLimits
from core.retry import Links, retry_failures
from web.auth.backend import caller_of
from web.contract.answers import job_body, json_response
from web.contract.params import path_uuid
from web.jobs import linked_body


async def retry(request: Request) -> Response:
    """201 with the child job; 200 with the same child when it was made before."""
    caller = caller_of(request)
    job_id = path_uuid(request, "job_id")
    state = request.app.state
    limits = UserLimits.from_settings(state.settings)
    submission = await run_in_threadpool(
        retry_failures, state.database.sessions, state.settings, caller.user_id, job_id, limits
    )
    child = submission.job
    # This process answers the parent's next read with its link at once; the others learn
    # of it from the notification the retry's transaction sent.
    state.live.jobs.changed(job_id)
    if submission.turns:
        state.sender.offer(child.id, child.user_id, submission.turns)
    headers = {"Location": f"/api/job/{child.id}"}
    if not submission.created:
        headers["Idempotent-Replayed"] = "true"
    body = linked_body(job_body(child), Links(retry_of=job_id))
    return json_response(body, 201 if submission.created else 200, headers)
