"""Running one turn: claim a user's slices, create their accounts, record them together."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
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
from worker.provider_loop import Outcomes, ProviderLoop, wait_all
from worker.pushback import SliceDeferred
from worker.shared_providers import ProviderFactory
from worker.slice_span import slice_spans, used
from worker.turns import TurnPolicy, take_turn
from worker.waiting_status import WaitingStatus

logger = logging.getLogger(__name__)

# Sends a turn message after a delay in seconds (the worker's broker).
Resend = Callable[[float], None]

Run = tuple[slices.SliceClaim, Sequence[ItemOutcome]]


@dataclass(frozen=True)
class SliceContext:
    """What a worker process brings to every turn it takes."""

    sessions: SessionFactory
    settings: Settings
    box: SecretBox
    providers: ProviderFactory
    provider_loop: ProviderLoop
    resend: Resend | None = None  # None: the sweep sends turns for slices given back
    cancellations: CancelWatcher | None = None  # None: slices are not stopped on cancel


def run_turn(context: SliceContext) -> slices.SliceResult:
    """Take a turn: claim the slices of the user at the front of the turn queue, create
    their accounts and record them; a no-op if no slice may run now.

    Once a turn has claimed work, the next turn is sent at once (through `resend`), and a
    second one when more of its user's work is ready, so the turns of every worker's threads
    overlap while work remains; a turn that finds nothing sends none.
    """
    policy = TurnPolicy.from_settings(context.settings)
    turn = take_turn(context.sessions, policy, context.settings.intervals.lease)
    claims = turn.claims
    if not claims:
        return slices.SliceResult(recorded=False)
    if context.resend is not None:
        context.resend(0.0)
        if turn.more:  # one more while work remains: the turns spread over every process
            context.resend(0.0)
    try:
        with log_context(user_id=claims[0].user_id):
            return _run_claimed(context, claims)
    except BaseException:
        # The message will be retried (or a turn sent by the sweep): let it claim the slices
        # now instead of after their leases run out.
        _give_back(context, claims)
        raise


def _run_claimed(context: SliceContext, claims: list[slices.SliceClaim]) -> slices.SliceResult:
    most = context.settings.slice_max_attempts
    runs: list[Run] = [(c, _given_up(c)) for c in claims if c.attempt > most]
    failure: BaseException | None = None
    for claim, outcomes in _create_all(context, [c for c in claims if c.attempt <= most]):
        try:
            runs.append((claim, outcomes.result()))
        except SliceDeferred as deferred:
            _defer(context, claim, deferred)
        except (ProviderUnavailable, UnknownProvider) as exc:
            logger.error("job %s cannot run: %s", claim.job_id, exc)
            fail_job(context.sessions, claim.job_id, str(exc))
        except BaseException as exc:  # recorded below with the others; then retried
            failure = failure or exc
    result = slices.record_turn(context.sessions, runs, context.box) if runs else None
    if failure is not None:
        raise failure
    return result or slices.SliceResult(recorded=False)


def _given_up(claim: slices.SliceClaim) -> list[ItemOutcome]:
    logger.warning(
        "slice %s/%s gave up after %d attempts", claim.job_id, claim.slice_index, claim.attempt
    )
    # Earlier attempts may have called the provider for any of its slots: their keys are kept.
    return [ItemOutcome(i, error="gave up", ambiguous=True) for i in claim.indices]


def _defer(context: SliceContext, claim: slices.SliceClaim, deferred: SliceDeferred) -> None:
    """Give the slice back until the provider's retry time and send a turn for then."""
    logger.info("slice %s/%s waits for the provider: %s", claim.job_id, claim.slice_index, deferred)
    if not defer(context.sessions, claim, deferred.retry_at, deferred.reason):
        return  # no longer ours: whoever took it over runs it
    if context.resend is not None:
        context.resend(0.0)  # for the user's other ready work: a turn may have met the hold
        context.resend(max(0.0, deferred.retry_at - time.time()))


def _give_back(context: SliceContext, claims: list[slices.SliceClaim]) -> None:
    try:
        slices.give_back_all(context.sessions, claims)
    except SQLAlchemyError:
        logger.warning(
            "could not give back %d slices; they are retried once their leases run out",
            len(claims),
            exc_info=True,
        )


def _create_all(
    context: SliceContext, claims: list[slices.SliceClaim]
) -> list[tuple[slices.SliceClaim, Outcomes]]:
    """Run every claimed slice's provider calls at once on the process's loop."""
    settings = context.settings
    keeper = LeaseKeeper(
        context.sessions, claims, settings.intervals.lease, settings.intervals.heartbeat
    )
    with keeper, contextlib.ExitStack() as flags, slice_spans(claims) as spans:
        started = []
        for claim, span in zip(claims, spans, strict=True):
            cancelled = flags.enter_context(_cancel_flag(context, claim))
            with used(span):  # the slice's provider calls are its span's children
                started.append((claim, _start(context, claim, cancelled)))
        wait_all([outcomes for _, outcomes in started])
    return started


def _start(
    context: SliceContext, claim: slices.SliceClaim, cancelled: threading.Event | None
) -> Outcomes:
    settings = context.settings
    loop = context.provider_loop
    try:
        provider = context.providers(claim.provider, settings)
    except (ProviderUnavailable, UnknownProvider) as exc:  # its job fails; the others run
        unknown: Outcomes = concurrent.futures.Future()
        unknown.set_exception(exc)
        return unknown
    # Only a provider that pushes back needs the job's clock and its waiting status.
    paced = loop.paces(claim.provider)
    return loop.start(
        provider,
        claim.job_id,
        list(claim.indices),
        settings.provider_attempts,
        WaitingStatus(context.sessions, claim.job_id, loop.status_writer),
        job_started=job_started(context.sessions, claim.job_id) if paced else None,
        stop=None if cancelled is None else cancelled.is_set,
        user=claim.user_id if settings.fair_turns else None,
        lanes=claim.lanes,
        kept_keys=claim.kept_keys,
    )


def _cancel_flag(
    context: SliceContext, claim: slices.SliceClaim
) -> contextlib.AbstractContextManager[threading.Event | None]:
    if context.cancellations is None:
        return contextlib.nullcontext()
    return context.cancellations.watch(claim.job_id)
