"""The words every process shares: statuses, topics, ledger kinds, waiting and failure reasons."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Literal, get_args


class JobStatus(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """Whether a job in this status will never change again."""
        return self in TERMINAL_JOB_STATUSES


UNFINISHED_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)
TERMINAL_JOB_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class SliceStatus(StrEnum):
    """Where one slice of a job is."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"


class Topic(StrEnum):
    """What an outbox row records."""

    JOB_COMPLETED = "job.completed"
    VAULT_REMOVED = "vault.removed"


# The providers a job may name (core/providers/registry.py builds each).
ProviderName = Literal["sandbox", "http"]
PROVIDER_NAMES: tuple[str, ...] = get_args(ProviderName)


class LedgerKind(StrEnum):
    """What moved a user's credits."""

    GRANT = "grant"
    HOLD = "hold"
    RELEASE = "release"
    ADJUST = "adjust"
    REFUND = "refund"


def sql_list(values: Iterable[StrEnum]) -> str:
    """An SQL list literal of vocabulary words, e.g. `('queued', 'running')`.

    Literals rather than bind parameters, so that partial indexes defined with the same
    list match the statements that use it.
    """
    return "(" + ", ".join(f"'{value.value}'" for value in values) + ")"


UNFINISHED_SQL = sql_list(UNFINISHED_JOB_STATUSES)
TERMINAL_SQL = sql_list(TERMINAL_JOB_STATUSES)


class WaitingReason(StrEnum):
    """Why a provider pushes back, and so why an unfinished job waits (jobs.waiting)."""

    RATE_LIMITED = "provider_rate_limited"
    UNAVAILABLE = "provider_unavailable"


class FailureReason(StrEnum):
    """Why an item failed: the keys of a job's failures by reason (jobs.failure_reasons)."""

    REFUSED = "refused"  # the provider refused the request for good
    RETRIES_EXHAUSTED = "retries_exhausted"  # every attempt failed, transiently
    # The provider stayed unavailable past the job's patience: the waiting reason's word.
    UNAVAILABLE = WaitingReason.UNAVAILABLE.value
    FAILED = "failed"  # a failure of no known kind


# The words a person reads for each reason (the dashboard shows them); the API description
# carries them beside each reason's values, as `x-labels`.
LABELS: dict[type[StrEnum], dict[str, str]] = {
    WaitingReason: {
        WaitingReason.RATE_LIMITED: "provider rate limit",
        WaitingReason.UNAVAILABLE: "provider unavailable",
    },
    FailureReason: {
        FailureReason.REFUSED: "refused by the provider",
        FailureReason.RETRIES_EXHAUSTED: "failed on every attempt",
        FailureReason.UNAVAILABLE: "provider unavailable for too long",
        FailureReason.FAILED: "failed",
    },
}
