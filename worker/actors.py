"""Dramatiq actors. `dramatiq worker.actors` imports this module in every worker process."""

from __future__ import annotations

import logging
import uuid

import dramatiq

from core.logs import configure_logging, log_context
from core.settings import Settings
from worker import resources
from worker.broker import setup_broker
from worker.processing import run_slice

logger = logging.getLogger(__name__)

SLICE_QUEUE = "slices"

settings = Settings.from_env()
if settings.log_format == "json":  # text stays in Dramatiq's own format (process, thread)
    configure_logging(settings.log_format)
broker = setup_broker(settings)


@dramatiq.actor(queue_name=SLICE_QUEUE, max_retries=20, min_backoff=500, max_backoff=15_000)
def process_slice(job_id: str, slice_index: int) -> None:
    """Process one slice of a job; safe to run any number of times."""
    with log_context(job_id=job_id, slice_index=slice_index):
        result = run_slice(resources.current(), uuid.UUID(job_id), slice_index)
        if result.finished is not None:
            logger.info(
                "job %s %s: %d created, %d failed",
                job_id,
                result.finished.status,
                result.finished.successful,
                result.finished.failures,
                extra={"user_id": result.finished.user_id},
            )
