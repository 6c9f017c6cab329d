"""The HTTP contract: every request and response body, declared once as msgspec Structs.

Request bodies are validated by decoding into these types (web/contract/params.py), answers are
encoded from them (web/contract/answers.py), and the OpenAPI components are generated from them
(web/contract/openapi.py), so the three cannot disagree.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType, defstruct

from core.stats import STAT_NAMES
from core.vocabulary import FailureReason, JobStatus, LedgerKind, WaitingReason

# An ISO 8601 timestamp with its UTC offset, as datetime.isoformat() writes it.
Timestamp = Annotated[str, Meta(extra_json_schema={"format": "date-time"})]
Share = Annotated[float, Meta(ge=0, le=1)]


class JobRequest(Struct, forbid_unknown_fields=True):
    """POST /api/jobs: how many accounts to create, and with which provider."""

    # 1 to TALLY_MAX_JOB_COUNT; the range is checked with the other submit rules (core/jobs).
    count: Annotated[int, Meta(extra_json_schema={"minimum": 1})]
    provider: Annotated[str | UnsetType, Meta(description="Default: TALLY_PROVIDER.")] = UNSET


class ErrorDetail(Struct):
    """What went wrong; `field` names the input at fault, `needed`/`balance` a credit shortfall."""

    code: str
    message: str
    field: str | UnsetType = UNSET
    needed: int | UnsetType = UNSET
    balance: int | UnsetType = UNSET


class Error(Struct):
    """Every error answer."""

    error: ErrorDetail


class Me(Struct):
    """Who the bearer token belongs to, and whether they may read admin endpoints."""

    user_id: uuid.UUID
    name: str
    is_admin: bool


class Job(Struct):
    """A job's status, as polled."""

    id: uuid.UUID
    status: JobStatus
    requested: int
    successful: int
    failures: int
    progress: Share
    provider: str
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    error: str | None
    cancelled: Annotated[int, Meta(description="Items never attempted: the job was cancelled.")]
    cancel_requested_at: Timestamp | None
    # Why an unfinished job is slow, and when its provider may be called again.
    waiting: WaitingReason | None = None
    retry_at: Timestamp | None = None
    failures_by_reason: dict[FailureReason, int] = {}
    orphans: int = 0  # accounts the provider may hold that the vault does not
    retry_of: Annotated[
        uuid.UUID | None, Meta(description="The job whose failed items this job retries.")
    ] = None
    retried_by: Annotated[
        uuid.UUID | None, Meta(description="The job retrying this job's failed items.")
    ] = None
    note: Annotated[
        str | None,
        Meta(description="Why a job ended as it did when its status alone would mislead."),
    ] = None


class JobPage(Struct):
    """One page of the caller's jobs."""

    items: list[Job]
    total: int  # every job of the caller
    limit: int
    next: str | None  # the URL of the next page (also in the Link header), or null
    next_cursor: str | None  # the `cursor` that URL carries


# The stats card: exactly the user_stats counters, so a new stat needs no change here.
Stats = defstruct(
    "Stats",
    [("user_id", uuid.UUID), *((name, int) for name in STAT_NAMES)],
    module=__name__,
)


class LedgerEntry(Struct):
    """One movement of credits."""

    id: int
    kind: LedgerKind
    amount: int
    job_id: uuid.UUID | None
    note: str
    created_at: Timestamp


class Credits(Struct):
    """The balance and one page of the ledger, newest first."""

    balance: int
    entries: list[LedgerEntry]
    total: int  # every ledger entry of the caller
    limit: int
    next: str | None  # the URL of the next page (also in the Link header), or null
    next_cursor: str | None  # the `cursor` that URL carries


class Account(Struct):
    """A vault account, without its secret."""

    id: uuid.UUID
    job_id: uuid.UUID
    item_index: int
    provider: str
    external_id: str
    username: str
    metadata: dict[str, Any]
    created_at: Timestamp


class AccountPage(Struct):
    """One page of the caller's vault."""

    items: list[Account]
    total: int  # live accounts: the stats card's business_centers
    limit: int
    next: str | None  # the URL of the next page (also in the Link header), or null
    next_cursor: str | None  # the `cursor` that URL carries


class Secret(Struct):
    """One account's secret, asked for explicitly."""

    id: uuid.UUID
    secret: str


class Health(Struct):
    """The process is up."""

    status: str


class NotReady(Struct):
    """Why the service is not ready: the database, a stuck outbox or no live daemon."""

    status: str
    reason: str


class Heartbeat(Struct):
    """The newest reconcile daemon heartbeat; host and pid only for the scrape token."""

    daemon_id: uuid.UUID
    is_leader: bool
    started_at: Timestamp
    last_seen: Timestamp
    age_seconds: float
    outbox_backlog: int
    outbox_oldest_pending_seconds: float
    hostname: str | UnsetType = UNSET
    pid: int | UnsetType = UNSET


class Ready(Struct):
    """The database answers; how far behind the outbox apply is; the newest heartbeat."""

    status: str
    outbox_backlog: int
    outbox_oldest_pending_seconds: float
    reconcile: Heartbeat | None
    # Rows the apply set aside: shown, not a reason to be unready (every other row applies).
    outbox_quarantined: int = 0


class Drift(Struct):
    """One figure a reconciliation run found wrong."""

    subject: str
    subject_id: str
    field: str
    expected: int
    actual: int
    repaired: bool


class ReportSummary(Struct):
    """A reconciliation run, without its drift rows."""

    id: int
    started_at: Timestamp
    duration_seconds: float
    origin: str
    users_checked: int
    outbox_backlog: int
    oldest_pending_seconds: float
    jobs_swept: int | None
    slices_resent: int | None
    drift_count: int
    repair: bool
    repaired_count: int
    unrepaired: int
    orphans: int  # accounts providers may hold that no vault does (ambiguous calls)
    outbox_quarantined: int  # outbox rows the apply set aside (`tally outbox list`)


class Report(ReportSummary):
    """A reconciliation run with one page of its drift rows."""

    drifts: list[Drift]
    drift_limit: int
    drift_offset: int


class ReportPage(Struct):
    """One page of reconciliation reports, newest first."""

    items: list[ReportSummary]
    total: int
    limit: int
    offset: int


# Text PostgreSQL can store: anything but NUL.
NO_NUL = "^[^\\x00]*$"
# A payment id or other operator reference: what makes a grant apply once.
Reference = Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)]
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)]
Label = Annotated[str, Meta(max_length=200, pattern=NO_NUL)]
MAX_CREDITS = 1_000_000_000_000


class UserRequest(Struct, forbid_unknown_fields=True):
    """POST /api/admin/users: a new user, optionally with the frontend's id for them."""

    name: Name
    id: uuid.UUID | UnsetType = UNSET
    credits: Annotated[int, Meta(ge=0, le=MAX_CREDITS)] = 0
    is_admin: bool = False


class CreatedUser(Struct):
    """A created user and its first API token (shown once) with the id that revokes it."""

    user_id: uuid.UUID
    name: str
    is_admin: bool
    token: str
    token_id: int


class GrantRequest(Struct, forbid_unknown_fields=True):
    """POST /api/admin/users/<id>/credits: credits to add (or, negative, to refund) once."""

    amount: Annotated[
        int,
        Meta(
            ge=-MAX_CREDITS,
            le=MAX_CREDITS,
            description="Credits to add; negative to refund. Never 0.",
            extra_json_schema={"not": {"const": 0}},
        ),
    ]
    reference: Reference
    note: Label = ""


class Grant(Struct):
    """A grant or refund by reference; `applied` is false when the reference was seen before."""

    user_id: uuid.UUID
    amount: int
    reference: str
    balance: int
    applied: bool


class TokenRequest(Struct, forbid_unknown_fields=True):
    """POST /api/admin/users/<id>/tokens: another API token for the user."""

    label: Label = ""


class IssuedToken(Struct):
    """A new API token, shown once, and the id that revokes it."""

    id: int
    user_id: uuid.UUID
    token: str
    label: str


class TokenInfo(Struct):
    """An API token as listed: never the token itself."""

    id: int
    label: str
    created_at: Timestamp
    revoked_at: Timestamp | None


class TokenList(Struct):
    """The caller's API tokens, newest first."""

    items: list[TokenInfo]


class ExportRequest(Struct, forbid_unknown_fields=True):
    """POST /api/exports: which accounts, in which format, and whether secrets leave too."""

    format: Literal["csv", "ndjson"] = "csv"
    include: Annotated[
        Literal["secrets", "none"],
        Meta(description='"secrets" adds each account\'s decrypted secret: an explicit intent.'),
    ] = "none"
    job_id: Annotated[
        uuid.UUID | UnsetType, Meta(description="One job's accounts; default: the whole vault.")
    ] = UNSET
    cursor: Annotated[
        str | UnsetType, Meta(description="Resume after the row that carried this cursor.")
    ] = UNSET


class ExportInfo(Struct):
    """One recorded export."""

    id: uuid.UUID
    job_id: uuid.UUID | None
    format: str
    secrets: bool
    status: str
    accounts: int
    resumed: bool
    started_at: Timestamp
    finished_at: Timestamp | None


class ExportList(Struct):
    """The caller's newest exports."""

    items: list[ExportInfo]


class JobAccountPage(Struct):
    """One page of a job's accounts (no secrets); `next_cursor` is null on the last page."""

    items: list[Account]
    next_cursor: str | None
    limit: int


class WebhookRequest(Struct, forbid_unknown_fields=True):
    """POST /api/webhooks: where to deliver the caller's terminal job statuses."""

    url: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=2048,
            pattern="^https?://[^/?#]+",
            description="https (http too in development); at most 2048 characters. A URL "
            "that resolves to a loopback, private or link-local address is refused (400).",
        ),
    ]


class WebhookEndpoint(Struct):
    """A registered endpoint; `secret` (for verifying signatures) only in the creating answer."""

    id: uuid.UUID
    url: str
    created_at: Timestamp
    failing_since: Timestamp | None
    secret: str | UnsetType = UNSET


class WebhookList(Struct):
    """The caller's endpoints."""

    items: list[WebhookEndpoint]


class WebhookDelivery(Struct):
    """One delivery of one event to one endpoint."""

    id: int
    event_id: str
    origin: Literal["event", "test", "replay"]
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    response_status: int | None
    last_error: str | None
    next_attempt_at: Timestamp
    created_at: Timestamp
    finished_at: Timestamp | None


class DeliveryPage(Struct):
    """One page of an endpoint's delivery log, newest first; pass `next_before` for more."""

    items: list[WebhookDelivery]
    next_before: int | None
