"""ETags of job status answers, and reading the If-None-Match header."""

from __future__ import annotations

import hashlib

from core.jobs import JobView


def job_etag(job: JobView) -> str:
    """A strong validator that changes whenever the status answer would."""
    state = f"{job.id}:{job.status}:{job.successful}:{job.failures}:{job.updated_at.isoformat()}"
    return '"' + hashlib.sha256(state.encode()).hexdigest()[:32] + '"'


def etags(header: str) -> set[str]:
    """The entity tags an If-None-Match header lists (weak ones compared as strong)."""
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
