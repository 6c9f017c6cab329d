"""The words every process shares: job and slice statuses, outbox topics, ledger kinds."""

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


# Why an unfinished job is slow (jobs.waiting): its provider pushes back.
WaitingReason = Literal["provider_rate_limited", "provider_unavailable"]
WAITING_REASONS: tuple[str, ...] = get_args(WaitingReason)
