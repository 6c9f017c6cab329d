"""Long-polling a job: answer when its status answer changes, or when the wait is over."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection

from core.jobs import JobView
from web.contract.etags import job_etag
from web.live.hub import LiveJobs

MAX_WAIT_SECONDS = 60


async def changed_job(
    live: LiveJobs,
    user_id: uuid.UUID,
    job_id: uuid.UUID,
    known_etags: Collection[str],
    wait: float,
) -> JobView:
    """Return the job once its ETag is not among `known_etags` (or the first read's).

    Without known ETags, the state at the start of the request is the baseline. A
    terminal job answers at once; after `wait` seconds the unchanged job is returned.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    with live.hub.watch(job_id) as topic:
        version = topic.version
        job = await live.jobs.get(user_id, job_id)
        baseline = set(known_etags) or {job_etag(job)}
        while job_etag(job) in baseline and not job.terminal:
            remaining = deadline - loop.time()
            if remaining <= 0 or not await topic.wait_beyond(version, remaining):
                break
            version = topic.version
            job = await live.jobs.get(user_id, job_id)
        return job
