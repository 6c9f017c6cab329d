"""Processing one slice of a job, from claim to recorded outcome."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from core import slices
from core.crypto import SecretBox
from core.database import SessionFactory
from core.errors import ProviderUnavailable, UnknownProvider
from core.fanout import ItemOutcome, run_fanout
from core.finish import fail_job
from core.lease import LeaseKeeper
from core.providers.base import Provider
from core.settings import Settings

logger = logging.getLogger(__name__)

ProviderFactory = Callable[[str, Settings], Provider]


@dataclass(frozen=True)
class SliceContext:
    """What a worker process brings to every slice it runs."""

    sessions: SessionFactory
    settings: Settings
    box: SecretBox
    providers: ProviderFactory


def run_slice(context: SliceContext, job_id: uuid.UUID, slice_index: int) -> slices.SliceResult:
    """Claim a slice, create its accounts and record them; a no-op if already done."""
    settings = context.settings
    claim = slices.claim(context.sessions, job_id, slice_index, settings.intervals.lease)
    if claim is None:
        return slices.SliceResult(recorded=False)
    if claim.attempt > settings.slice_max_attempts:
        logger.warning("slice %s/%s gave up after %d attempts", job_id, slice_index, claim.attempt)
        given_up = [ItemOutcome(i, error="gave up") for i in claim.indices]
        return slices.record(context.sessions, claim, given_up, context.box)
    try:
        outcomes = _create(context, claim)
    except (ProviderUnavailable, UnknownProvider) as exc:
        logger.error("job %s cannot run: %s", job_id, exc)
        fail_job(context.sessions, job_id, str(exc))
        return slices.SliceResult(recorded=False)
    return slices.record(context.sessions, claim, outcomes, context.box)


def _create(context: SliceContext, claim: slices.SliceClaim) -> list[ItemOutcome]:
    settings = context.settings
    provider = context.providers(claim.provider, settings)
    keeper = LeaseKeeper(
        context.sessions, claim, settings.intervals.lease, settings.intervals.heartbeat
    )
    with keeper:
        return run_fanout(
            provider,
            claim.job_id,
            list(claim.indices),
            concurrency=settings.provider_concurrency,
            attempts=settings.provider_attempts,
        )
