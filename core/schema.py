"""The tables. Alembic migrations are the source of truth; these mappings mirror them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.vocabulary import (
    UNFINISHED_SQL,
    JobStatus,
    LedgerKind,
    SliceStatus,
    WaitingReason,
    sql_list,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


NOW = text("now()")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=NOW)


def _user_fk() -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )


class User(Base):
    __tablename__ = "users"
    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(Text, nullable=False)
    is_admin: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    created_at: Mapped[datetime] = _created()


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[uuid.UUID] = _user_fk()
    token_hash: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    label: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    created_at: Mapped[datetime] = _created()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UserCredits(Base):
    __tablename__ = "user_credits"
    __table_args__ = (CheckConstraint("balance >= 0", name="balance_not_negative"),)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    balance: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    updated_at: Mapped[datetime] = _created()
    # The user's jobs and ledger entries, counted by the statement that moves the balance
    # (core/credits.py, core/finish.py): the lists' totals cost no count(*).
    jobs_total: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    ledger_total: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"status IN {sql_list(JobStatus)}", name="status_known"),
        CheckConstraint("requested > 0", name="requested_positive"),
        CheckConstraint(
            "successful >= 0 AND failures >= 0 AND cancelled >= 0 "
            "AND successful + failures + cancelled <= requested",
            name="counts_within_requested",
        ),
        UniqueConstraint("user_id", "idempotency_key"),
        CheckConstraint(f"waiting IN {sql_list(WaitingReason)}", name="waiting_known"),
        Index("ix_jobs_user_id_created_at_id", "user_id", text("created_at DESC"), text("id DESC")),
        Index(
            "ix_jobs_unfinished",
            "status",
            postgresql_where=text(f"status IN {UNFINISHED_SQL}"),
        ),
        Index(
            "ix_jobs_user_id_unfinished",
            "user_id",
            postgresql_where=text(f"status IN {UNFINISHED_SQL}"),
        ),
        Index(
            "ix_jobs_unfinished_updated_at",
            "updated_at",
            postgresql_where=text(f"status IN {UNFINISHED_SQL}"),
        ),
    )
    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = _user_fk()
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default=JobStatus.QUEUED.value)
    provider: Mapped[str] = mapped_column(Text, nullable=False)
    requested: Mapped[int] = mapped_column(BigInteger, nullable=False)
    successful: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    failures: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    price: Mapped[int] = mapped_column(Integer, nullable=False)
    slices_total: Mapped[int] = mapped_column(Integer, nullable=False)
    slices_done: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    idempotency_key: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = _created()
    cancelled: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    idempotency_fingerprint: Mapped[str | None] = mapped_column(Text)
    waiting: Mapped[str | None] = mapped_column(Text)
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    orphans: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    failure_reasons: Mapped[dict[str, int]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )


class JobSlice(Base):
    __tablename__ = "job_slices"
    __table_args__ = (
        CheckConstraint(f"status IN {sql_list(SliceStatus)}", name="status_known"),
        CheckConstraint("start_index < stop_index", name="range_not_empty"),
        Index(
            "ix_job_slices_unfinished",
            "status",
            "lease_expires_at",
            postgresql_where=text(f"status <> '{SliceStatus.DONE}'"),
        ),
        # A turn claims a user's oldest pending slices that may run now (core/turn_queue.py).
        Index(
            "ix_job_slices_ready",
            "user_id",
            "enqueued_at",
            "job_id",
            "slice_index",
            postgresql_where=text(f"status = '{SliceStatus.PENDING}'"),
        ),
        # The provider calls a user's running slices hold (TALLY_USER_CONCURRENCY).
        Index(
            "ix_job_slices_running",
            "user_id",
            postgresql_where=text(f"status = '{SliceStatus.RUNNING}'"),
        ),
        Index(
            "ix_job_slices_finished_at",
            "finished_at",
            postgresql_where=text(f"status = '{SliceStatus.DONE}'"),
        ),
    )
    job_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    slice_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    start_index: Mapped[int] = mapped_column(Integer, nullable=False)
    stop_index: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(
        Text, nullable=False, server_default=SliceStatus.PENDING.value
    )
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    enqueued_at: Mapped[datetime] = _created()
    successful: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    failures: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")


class CreditLedger(Base):
    __tablename__ = "credit_ledger"
    __table_args__ = (
        CheckConstraint(f"kind IN {sql_list(LedgerKind)}", name="kind_known"),
        UniqueConstraint("job_id", "kind"),
        Index("ix_credit_ledger_user_id_id", "user_id", "id"),
        UniqueConstraint("reference"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[uuid.UUID] = _user_fk()
    job_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("jobs.id", ondelete="RESTRICT")
    )
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    created_at: Mapped[datetime] = _created()
    # The operator's id for a grant or refund (a payment id): each applies at most once.
    reference: Mapped[str | None] = mapped_column(Text)


class UserAccount(Base):
    """One account in a user's vault."""

    __tablename__ = "user_accounts"
    __table_args__ = (
        UniqueConstraint("job_id", "item_index"),
        Index(
            "ix_user_accounts_live",
            "user_id",
            text("created_at DESC"),
            text("id DESC"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )
    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = _user_fk()
    job_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("jobs.id", ondelete="RESTRICT"), nullable=False
    )
    item_index: Mapped[int] = mapped_column(Integer, nullable=False)
    provider: Mapped[str] = mapped_column(Text, nullable=False)
    external_id: Mapped[str] = mapped_column(Text, nullable=False)
    username: Mapped[str] = mapped_column(Text, nullable=False)
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = _created()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Outbox(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("topic", "key"),
        Index("ix_outbox_pending", "id", postgresql_where=text("applied_at IS NULL")),
        Index(
            "ix_outbox_applied_at", "applied_at", postgresql_where=text("applied_at IS NOT NULL")
        ),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(Text, nullable=False)
    key: Mapped[str] = mapped_column(Text, nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = _created()
    applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set aside by the apply with the database's error; `tally outbox retry` applies it again.
    quarantined_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    # The W3C traceparent of the span that wrote the row (tracing on), for the apply's links.
    trace_context: Mapped[str | None] = mapped_column(Text)


class UserStats(Base):
    """The stats card existing frontends read; written only by the server."""

    __tablename__ = "user_stats"
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    requested: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    successful: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    failures: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    business_centers: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class ReconcileReport(Base):
    """One reconciliation run: what was checked, how far behind, how much drift."""

    __tablename__ = "reconcile_reports"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = _created()
    duration_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    origin: Mapped[str] = mapped_column(Text, nullable=False)
    users_checked: Mapped[int] = mapped_column(Integer, nullable=False)
    outbox_backlog: Mapped[int] = mapped_column(Integer, nullable=False)
    oldest_pending_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    jobs_swept: Mapped[int | None] = mapped_column(Integer)
    slices_resent: Mapped[int | None] = mapped_column(Integer)
    drift_count: Mapped[int] = mapped_column(Integer, nullable=False)
    repair: Mapped[bool] = mapped_column(Boolean, nullable=False)
    repaired_count: Mapped[int] = mapped_column(Integer, nullable=False)
    orphans: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    outbox_quarantined: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")


class ReconcileDrift(Base):
    """One figure a report found different from its source tables."""

    __tablename__ = "reconcile_drifts"
    __table_args__ = (Index("ix_reconcile_drifts_report_id_id", "report_id", "id"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("reconcile_reports.id", ondelete="CASCADE"), nullable=False
    )
    subject: Mapped[str] = mapped_column(Text, nullable=False)
    subject_id: Mapped[str] = mapped_column(Text, nullable=False)
    field: Mapped[str] = mapped_column(Text, nullable=False)
    expected: Mapped[int] = mapped_column(BigInteger, nullable=False)
    actual: Mapped[int] = mapped_column(BigInteger, nullable=False)
    repaired: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))


class ReconcileHeartbeat(Base):
    """The latest sign of life of one reconcile daemon."""

    __tablename__ = "reconcile_heartbeats"
    daemon_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    hostname: Mapped[str] = mapped_column(Text, nullable=False)
    pid: Mapped[int] = mapped_column(Integer, nullable=False)
    started_at: Mapped[datetime] = _created()
    last_seen: Mapped[datetime] = _created()
    is_leader: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    outbox_backlog: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    oldest_pending_seconds: Mapped[float] = mapped_column(Float, nullable=False, server_default="0")


class ReconcileLeader(Base):
    """Who leads the reconcile daemons, until when: a lease the leader keeps renewing."""

    __tablename__ = "reconcile_leader"
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    leader_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    elected_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class TurnQueue(Base):
    """Users with work to run, served round-robin by `position` (core/turn_queue.py)."""

    __tablename__ = "turn_queue"
    __table_args__ = (Index("ix_turn_queue_position", "position"),)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(BigInteger, nullable=False)
    wake_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=text("'-infinity'::timestamptz")
    )


class UserTurnsOwed(Base):
    """Turns a user's limit made run nothing, sent again as its running slices finish."""

    __tablename__ = "user_turns_owed"
    __table_args__ = (CheckConstraint("owed >= 0", name="owed_not_negative"),)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    owed: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")


class Export(Base):
    """One export of a job's accounts or of the whole vault: who, what, when, how many."""

    __tablename__ = "exports"
    __table_args__ = (
        CheckConstraint("format IN ('csv', 'ndjson')", name="format_known"),
        CheckConstraint("status IN ('running', 'done', 'interrupted')", name="status_known"),
        Index("ix_exports_user_id_started_at", "user_id", text("started_at DESC"), "id"),
        Index(
            "ix_exports_running",
            "user_id",
            unique=True,
            postgresql_where=text("status = 'running'"),
        ),
    )
    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = _user_fk()
    job_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("jobs.id", ondelete="RESTRICT")
    )
    format: Mapped[str] = mapped_column(Text, nullable=False)
    secrets: Mapped[bool] = mapped_column(Boolean, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="running")
    accounts: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    resumed: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    started_at: Mapped[datetime] = _created()
    seen_at: Mapped[datetime] = _created()  # the stream's latest page: a lease on `running`
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# The vault listed by keyset (created_at, id): exports page through it in constant cost.
Index(
    "ix_user_accounts_live_keyset",
    UserAccount.user_id,
    UserAccount.created_at,
    UserAccount.id,
    postgresql_where=text("deleted_at IS NULL"),
)


class JobRetry(Base):
    """A child job made of a finished job's failed items: child item i is parent_indices[i]."""

    __tablename__ = "job_retries"
    child_job_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("jobs.id"), primary_key=True
    )
    parent_job_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("jobs.id"), nullable=False, unique=True
    )
    parent_indices: Mapped[list[int]] = mapped_column(ARRAY(Integer), nullable=False)
    created_at: Mapped[datetime] = _created()


class SlotKey:
    """One job slot's provider key: the columns of the tables that keep keys."""

    job_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("jobs.id"), primary_key=True
    )
    item_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider_key: Mapped[str] = mapped_column(Text, nullable=False)


class AmbiguousItem(SlotKey, Base):
    """A failed job slot whose provider calls went unanswered: the account may exist.

    Its key is kept so that a retry of the slot asks with it again (core/retry.py).
    """

    __tablename__ = "ambiguous_items"


class KeptKey(SlotKey, Base):
    """A retry's slot that asks the provider with the key of the ambiguous slot it retries,
    not its own (core/providers/base.py `item_key`)."""

    __tablename__ = "kept_keys"


class WebhookEndpoint(Base):
    """Where a user wants their jobs' terminal statuses delivered, and its signing secret."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        Index("ix_webhook_endpoints_live", "user_id", postgresql_where=text("deleted_at IS NULL")),
    )
    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = _user_fk()
    url: Mapped[str] = mapped_column(Text, nullable=False)
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = _created()
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookDelivery(Base):
    """One event for one endpoint: its body, attempts so far and when to try next."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status_known"),
        CheckConstraint("origin IN ('event', 'test', 'replay')", name="origin_known"),
        Index(
            "ix_webhook_deliveries_event",
            "endpoint_id",
            "event_id",
            unique=True,
            postgresql_where=text("origin = 'event'"),
        ),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
    )
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[uuid.UUID] = _user_fk()
    event_id: Mapped[str] = mapped_column(Text, nullable=False)
    origin: Mapped[str] = mapped_column(Text, nullable=False, server_default="event")
    body: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    next_attempt_at: Mapped[datetime] = _created()
    response_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookPosition(Base):
    """How far the webhook fan-out has read the outbox (its own position, not the apply's)."""

    __tablename__ = "webhook_position"
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
