"""Processing one slice of a job, from claim to recorded outcome."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from core.crypto import SecretBox
from core.database import SessionFactory
from core.errors import ProviderUnavailable, UnknownProvider
from core.finish import fail_job
from core.logs import log_context
from core.settings import Settings
from worker import slices
from worker.cancellation import CancelWatcher
from worker.deferral import defer
from worker.fanout import ItemOutcome
from worker.job_clock import job_started
from worker.lease import LeaseKeeper
from worker.provider_loop import ProviderLoop
from worker.pushback import SliceDeferred
from worker.shared_providers import ProviderFactory
from worker.slice_span import slice_span
from worker.turns import TurnPolicy, take_turn
from worker.waiting_status import WaitingStatus

logger = logging.getLogger(__name__)

# Sends a slice's message again after a delay in seconds (the worker's broker).
Resend = Callable[[uuid.UUID, int, float], None]


@dataclass(frozen=True)
class SliceContext:
    """What a worker process brings to every slice it runs."""

    sessions: SessionFactory
    settings: Settings
    box: SecretBox
    providers: ProviderFactory
    provider_loop: ProviderLoop
    resend: Resend | None = None  # None: the sweep re-sends a deferred slice
    cancellations: CancelWatcher | None = None  # None: slices are not stopped on cancel


def run_slice(context: SliceContext, job_id: uuid.UUID, slice_index: int) -> slices.SliceResult:
    """Take a turn: claim the fairest waiting slice (a slice message is a turn, see
    worker/turns.py), create its accounts and record them; a no-op if none may run."""
    policy = TurnPolicy.from_settings(context.settings)
    claim = take_turn(context.sessions, policy, context.settings.intervals.lease)
    if claim is None:
        return slices.SliceResult(recorded=False)
    try:
        with (
            log_context(job_id=claim.job_id, slice_index=claim.slice_index, user_id=claim.user_id),
            slice_span(claim),
        ):
            return _run_claimed(context, claim)
    except BaseException:
        # The message will be retried (or re-sent by the sweep): let that attempt claim the
        # slice now instead of after the lease runs out.
        _give_back(context, claim)
        raise


def _run_claimed(context: SliceContext, claim: slices.SliceClaim) -> slices.SliceResult:
    job_id, slice_index = claim.job_id, claim.slice_index
    if claim.attempt > context.settings.slice_max_attempts:
        logger.warning("slice %s/%s gave up after %d attempts", job_id, slice_index, claim.attempt)
        given_up = [ItemOutcome(i, error="gave up") for i in claim.indices]
        return slices.record(context.sessions, claim, given_up, context.box)
    try:
        outcomes = _create(context, claim)
    except SliceDeferred as deferred:
        _defer(context, claim, deferred)
        return slices.SliceResult(recorded=False)
    except (ProviderUnavailable, UnknownProvider) as exc:
        logger.error("job %s cannot run: %s", job_id, exc)
        fail_job(context.sessions, job_id, str(exc))
        return slices.SliceResult(recorded=False)
    return slices.record(context.sessions, claim, outcomes, context.box)


def _defer(context: SliceContext, claim: slices.SliceClaim, deferred: SliceDeferred) -> None:
    """Give the slice back until the provider's retry time and send its message for then."""
    logger.info("slice %s/%s waits for the provider: %s", claim.job_id, claim.slice_index, deferred)
    if not defer(context.sessions, claim, deferred.retry_at, deferred.reason):
        return  # no longer ours: whoever took it over runs it
    if context.resend is not None:
        delay = max(0.0, deferred.retry_at - time.time())
        context.resend(claim.job_id, claim.slice_index, delay)


def _give_back(context: SliceContext, claim: slices.SliceClaim) -> None:
    try:
        slices.give_back(context.sessions, claim)
    except SQLAlchemyError:
        logger.warning(
            "could not give back slice %s/%s; it is retried once its lease runs out",
            claim.job_id,
            claim.slice_index,
            exc_info=True,
        )


def _create(context: SliceContext, claim: slices.SliceClaim) -> list[ItemOutcome]:
    settings = context.settings
    provider = context.providers(claim.provider, settings)
    keeper = LeaseKeeper(
        context.sessions, claim, settings.intervals.lease, settings.intervals.heartbeat
    )
    with keeper, _cancel_flag(context, claim) as cancelled:
        loop = context.provider_loop
        # Only a provider that pushes back needs the job's clock and its waiting status.
        paced = loop.paces(claim.provider)
        status = WaitingStatus(context.sessions, claim.job_id, loop.status_writer)
        started = job_started(context.sessions, claim.job_id) if paced else None
        return context.provider_loop.run(
            provider,
            claim.job_id,
            list(claim.indices),
            settings.provider_attempts,
            status,
            job_started=started,
            stop=None if cancelled is None else cancelled.is_set,
            user=claim.user_id if settings.fair_turns else None,
            lanes=claim.lanes,
        )


def _cancel_flag(
    context: SliceContext, claim: slices.SliceClaim
) -> contextlib.AbstractContextManager[threading.Event | None]:
    if context.cancellations is None:
        return contextlib.nullcontext()
    return context.cancellations.watch(claim.job_id)
