"""One typed settings object, read from the environment once per process, strictly.

Each field's type says what it accepts (msgspec converts and checks the environment's
strings against it): integers and numbers within their ranges, booleans as true/false/1/0,
names from a fixed list. Anything else is refused with the variable's name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, get_args, get_origin

import msgspec

from core.crypto import SecretBox
from core.errors import ConfigurationError
from core.vocabulary import ProviderName

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev", "development"})
MIN_SECRET_LENGTH = 32

Positive = Annotated[int, msgspec.Meta(ge=1)]
NotNegative = Annotated[int, msgspec.Meta(ge=0)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]
Share = Annotated[float, msgspec.Meta(ge=0, le=1)]
Milliseconds = Annotated[float, msgspec.Meta(ge=0)]
Days = Annotated[float, msgspec.Meta(gt=0)]
# Rows one prune statement deletes: small enough that each batch is a moment's work.
BatchSize = Annotated[int, msgspec.Meta(ge=1, le=50_000)]
# Dramatiq interrupts an actor after 10 minutes; a waiting slice gives back well before.
MAX_SLICE_WAIT_SECONDS = 480.0


def normalize_database_url(url: str) -> str:
    """Return a SQLAlchemy URL for psycopg2, accepting Heroku's postgres:// scheme."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


class SandboxOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Behaviour of the sandbox provider."""

    failure_rate: Share = 0.0
    transient_rate: Share = 0.0
    latency_ms: Milliseconds = 0.0


class WebhookOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How webhook deliveries are made and retried."""

    allow_private: bool = False  # deliver to loopback, private and link-local addresses
    timeout: Seconds = 10.0  # per connect, read and write of one attempt
    backoff: Seconds = 10.0  # the first retry's delay; each next one doubles
    backoff_max: Seconds = 3600.0
    give_up: Seconds = 86_400.0  # a delivery failing this long ends; its endpoint is failing
    concurrency: Positive = 32  # attempts in flight per webhooks process
    per_endpoint: Positive = 4  # attempts in flight per endpoint per process
    interval: Seconds = 0.5  # how often the outbox is read and due deliveries claimed


class Intervals(msgspec.Struct, frozen=True, kw_only=True):
    """Periods, in seconds, of the reconcile daemon's jobs and the slice lease."""

    apply: Seconds = 0.5
    sweep: Seconds = 5.0
    recompute: Seconds = 300.0
    report: Seconds = 3600.0
    heartbeat: Seconds = 2.0
    lease: Seconds = 30.0
    stale_enqueue: Seconds = 60.0
    leader_retry: Seconds = 2.0
    leader_lease: Seconds = 10.0
    retention: Seconds = 300.0


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a tally process needs to know about its environment."""

    database_url: str = ""
    # A connection without a pooler in between, for what needs a session (LISTEN, migrations).
    database_direct_url: str = ""  # "" = database_url
    # "transaction": DATABASE_URL is a pooler in transaction mode (PgBouncer); no session state.
    database_pooling: Literal["session", "transaction"] = "session"
    redis_url: str = ""
    rabbitmq_url: str = ""
    cloudamqp_url: str = ""  # the CloudAMQP add-on's name for the same thing
    broker: Literal["", "redis", "rabbitmq", "stub"] = ""  # "" = RabbitMQ if given, else Redis
    broker_timeout: Seconds = 2.0
    dramatiq_metrics: bool = False
    environment: Literal["development", "production"] = "development"
    price: NotNegative = 1
    max_job_count: Positive = 100_000
    slice_size: Positive = 500
    provider: ProviderName = "sandbox"
    providers: tuple[ProviderName, ...] = ()  # what users may choose; () = the default only
    provider_concurrency: Positive = 256
    provider_attempts: Positive = 3
    provider_url: str = ""
    provider_token: str = ""
    provider_timeout: Seconds = 10.0
    slice_max_attempts: Positive = 5
    fernet_key: str = ""
    apply_batch: Positive = 5000
    statement_timeout: Seconds = 60.0
    lock_timeout: Seconds = 10.0
    idle_transaction_timeout: Seconds = 10.0
    repair_drift: bool = False
    log_format: Literal["text", "json"] = "text"
    sandbox: SandboxOptions = msgspec.field(default_factory=SandboxOptions)
    intervals: Intervals = msgspec.field(default_factory=Intervals)
    web_pool_size: Positive = 10
    worker_pool_size: NotNegative = 0  # 0: the worker process's threads + 2
    reconcile_pool_size: Positive = 5
    metrics_token: str = ""  # bearer token for /metrics and /readyz; "" = open in development
    # A reconcile daemon serves its own measurements on this port; 0 = not served.
    metrics_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    ready_max_outbox_age: Seconds = 60.0
    auth_failures_per_minute: Positive = 20  # per client address, per web process
    jwt_secret: str = ""  # HS256 secret the frontend's sign-in service signs JWTs with
    jwks_url: str = ""  # where the public keys of asymmetric JWTs are published
    jwt_audience: str = "authenticated"
    jwt_issuer: str = ""  # "" = the iss claim is not checked
    signup_credits: NotNegative = 0  # granted to a user provisioned by their first JWT
    service_key: str = ""  # bearer key for the operator API, beside admin tokens
    rls: bool = False  # row-level security for the `authenticated` role (read by migrations)
    cors_origins: tuple[str, ...] = ()  # origins whose pages may call the API
    user_max_unfinished_jobs: NotNegative = 100  # queued or running jobs per user; 0 = no limit
    user_submits_per_minute: NotNegative = 120  # jobs accepted per user in any 60 s; 0 = no limit
    provider_rate_limit: Annotated[float, msgspec.Meta(ge=0)] = 0.0  # http calls/s; 0 = none
    provider_patience: Seconds = 900.0  # unavailable this long, a job's remaining items fail
    provider_backoff_max: Seconds = 30.0  # longest pause after pushback without Retry-After
    slice_wait: Seconds = 120.0  # a slice waiting longer is given back with a delayed message
    user_concurrency: Positive = 10_000  # provider calls in flight per user, every worker
    fair_turns: bool = True  # false: slices are served oldest first, whoever's they are
    retention_days: Days = 30.0  # applied outbox rows and finished jobs' slices kept this long
    reports_kept: Positive = 100  # the newest reconciliation reports kept (with their drift)
    retention_batch: BatchSize = 1000  # rows per prune transaction
    webhooks: WebhookOptions = msgspec.field(default_factory=WebhookOptions)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (os.environ by default)."""
        env = os.environ if env is None else env
        given = {name: env[name] for name in VARIABLES if env.get(name, "") != ""}
        try:
            settings = msgspec.convert(_nest(given), cls, strict=False)
        except msgspec.ValidationError as exc:
            raise ConfigurationError(_explain(exc, given)) from None
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse combinations a process cannot run with."""
        if not self.database_url:
            raise ConfigurationError("DATABASE_URL is not set")
        if self.intervals.leader_lease <= self.intervals.leader_retry:
            raise ConfigurationError(
                "TALLY_LEADER_LEASE_SECONDS must be longer than TALLY_LEADER_RETRY_SECONDS"
            )
        if self.provider not in self.offered_providers:
            raise ConfigurationError("TALLY_PROVIDERS must include TALLY_PROVIDER")
        if "http" in self.offered_providers and not self.provider_url:
            raise ConfigurationError(
                "TALLY_PROVIDER_URL is not set but the http provider is offered"
            )
        if self.slice_wait > MAX_SLICE_WAIT_SECONDS:
            raise ConfigurationError(
                f"TALLY_SLICE_WAIT_SECONDS must be at most {MAX_SLICE_WAIT_SECONDS:.0f} "
                "(a slice must give its message back before the actor's time limit)"
            )
        if self.environment != "development":
            if self.fernet_key in PLACEHOLDER_SECRETS:
                raise ConfigurationError(
                    "TALLY_FERNET_KEY must be set to a real key outside development"
                )
            SecretBox(self.fernet_key)  # raises ConfigurationError for a malformed key
            if self.metrics_token and self.metrics_token in PLACEHOLDER_SECRETS:
                raise ConfigurationError("TALLY_METRICS_TOKEN must not be a placeholder")
            if self.jwt_secret and len(self.jwt_secret) < MIN_SECRET_LENGTH:
                raise ConfigurationError(
                    f"TALLY_JWT_SECRET must be at least {MIN_SECRET_LENGTH} characters"
                )
        if self.service_key and len(self.service_key) < MIN_SECRET_LENGTH:
            raise ConfigurationError(
                f"TALLY_SERVICE_KEY must be at least {MIN_SECRET_LENGTH} characters"
            )

    @property
    def offered_providers(self) -> tuple[str, ...]:
        """The providers users may choose: the operator's allowlist, or the default alone."""
        return self.providers or (self.provider,)

    @property
    def direct_database_url(self) -> str:
        """The URL for session needs: DATABASE_DIRECT_URL, else DATABASE_URL."""
        return self.database_direct_url or self.database_url

    @property
    def amqp_url(self) -> str:
        """RabbitMQ's URL: RABBITMQ_URL, else CLOUDAMQP_URL."""
        return self.rabbitmq_url or self.cloudamqp_url

    @property
    def broker_kind(self) -> Literal["redis", "rabbitmq", "stub"] | None:
        """The broker: TALLY_BROKER, else RabbitMQ when its URL is given, else Redis."""
        if self.broker:
            return self.broker
        if self.amqp_url:
            return "rabbitmq"
        return "redis" if self.redis_url else None

    @property
    def stub_broker(self) -> bool:
        """Whether this process uses Dramatiq's in-memory broker (unit tests only)."""
        return self.broker == "stub"

    def require_broker(self) -> None:
        """Refuse to run a process that sends or receives messages without a usable broker."""
        kind = self.broker_kind
        if kind is None:
            raise ConfigurationError("REDIS_URL (or RABBITMQ_URL) is not set")
        if kind == "redis" and not self.redis_url:
            raise ConfigurationError("TALLY_BROKER is redis but REDIS_URL is not set")
        if kind == "rabbitmq" and not self.amqp_url:
            raise ConfigurationError("TALLY_BROKER is rabbitmq but RABBITMQ_URL is not set")
        if self.rabbitmq_url and self.cloudamqp_url and self.rabbitmq_url != self.cloudamqp_url:
            raise ConfigurationError("RABBITMQ_URL and CLOUDAMQP_URL name different servers")
        if kind != "stub" and "http" in self.offered_providers and not self.redis_url:
            raise ConfigurationError(
                "REDIS_URL is not set: the http provider's pacing (pauses, "
                "TALLY_PROVIDER_RATE_LIMIT) is shared between worker processes in Redis"
            )

    def secret_box(self) -> SecretBox:
        """The Fernet box for account secrets; raises ConfigurationError without a valid key."""
        return SecretBox(self.fernet_key)

    def with_changes(self, **changes: Any) -> Settings:
        """Return a copy with some fields replaced (tests build their own settings)."""
        return msgspec.structs.replace(self, **changes)


# Each variable and the field it sets (a dotted path into Settings).
VARIABLES: dict[str, str] = {
    "DATABASE_URL": "database_url",
    "DATABASE_DIRECT_URL": "database_direct_url",
    "TALLY_DATABASE_POOLING": "database_pooling",
    "REDIS_URL": "redis_url",
    "RABBITMQ_URL": "rabbitmq_url",
    "CLOUDAMQP_URL": "cloudamqp_url",
    "TALLY_BROKER": "broker",
    "TALLY_BROKER_TIMEOUT": "broker_timeout",
    "TALLY_DRAMATIQ_METRICS": "dramatiq_metrics",
    "TALLY_ENV": "environment",
    "TALLY_PRICE": "price",
    "TALLY_MAX_JOB_COUNT": "max_job_count",
    "TALLY_SLICE_SIZE": "slice_size",
    "TALLY_PROVIDER": "provider",
    "TALLY_PROVIDERS": "providers",
    "TALLY_PROVIDER_CONCURRENCY": "provider_concurrency",
    "TALLY_PROVIDER_ATTEMPTS": "provider_attempts",
    "TALLY_PROVIDER_URL": "provider_url",
    "TALLY_PROVIDER_TOKEN": "provider_token",
    "TALLY_PROVIDER_TIMEOUT": "provider_timeout",
    "TALLY_SLICE_MAX_ATTEMPTS": "slice_max_attempts",
    "TALLY_FERNET_KEY": "fernet_key",
    "TALLY_APPLY_BATCH": "apply_batch",
    "TALLY_STATEMENT_TIMEOUT": "statement_timeout",
    "TALLY_LOCK_TIMEOUT": "lock_timeout",
    "TALLY_IDLE_TRANSACTION_TIMEOUT": "idle_transaction_timeout",
    "TALLY_REPAIR_DRIFT": "repair_drift",
    "LOG_FORMAT": "log_format",
    "TALLY_LOG_FORMAT": "log_format",  # wins over LOG_FORMAT, the older name
    "TALLY_SANDBOX_FAILURE_RATE": "sandbox.failure_rate",
    "TALLY_SANDBOX_TRANSIENT_RATE": "sandbox.transient_rate",
    "TALLY_SANDBOX_LATENCY_MS": "sandbox.latency_ms",
    "TALLY_APPLY_INTERVAL": "intervals.apply",
    "TALLY_SWEEP_INTERVAL": "intervals.sweep",
    "TALLY_RECOMPUTE_INTERVAL": "intervals.recompute",
    "TALLY_REPORT_INTERVAL": "intervals.report",
    "TALLY_HEARTBEAT_INTERVAL": "intervals.heartbeat",
    "TALLY_LEASE_SECONDS": "intervals.lease",
    "TALLY_STALE_ENQUEUE_SECONDS": "intervals.stale_enqueue",
    "TALLY_LEADER_RETRY_SECONDS": "intervals.leader_retry",
    "TALLY_LEADER_LEASE_SECONDS": "intervals.leader_lease",
    "TALLY_WEB_POOL_SIZE": "web_pool_size",
    "TALLY_WORKER_POOL_SIZE": "worker_pool_size",
    "TALLY_RECONCILE_POOL_SIZE": "reconcile_pool_size",
    "TALLY_METRICS_TOKEN": "metrics_token",
    "TALLY_METRICS_PORT": "metrics_port",
    "TALLY_READY_MAX_OUTBOX_AGE": "ready_max_outbox_age",
    "TALLY_AUTH_FAILURES_PER_MINUTE": "auth_failures_per_minute",
    "TALLY_JWT_SECRET": "jwt_secret",
    "TALLY_JWKS_URL": "jwks_url",
    "TALLY_JWT_AUDIENCE": "jwt_audience",
    "TALLY_JWT_ISSUER": "jwt_issuer",
    "TALLY_SIGNUP_CREDITS": "signup_credits",
    "TALLY_SERVICE_KEY": "service_key",
    "TALLY_RLS": "rls",
    "TALLY_CORS_ORIGINS": "cors_origins",
    "TALLY_USER_MAX_UNFINISHED_JOBS": "user_max_unfinished_jobs",
    "TALLY_USER_SUBMITS_PER_MINUTE": "user_submits_per_minute",
    "TALLY_PROVIDER_RATE_LIMIT": "provider_rate_limit",
    "TALLY_PROVIDER_PATIENCE": "provider_patience",
    "TALLY_PROVIDER_BACKOFF_MAX": "provider_backoff_max",
    "TALLY_SLICE_WAIT_SECONDS": "slice_wait",
    "TALLY_USER_CONCURRENCY": "user_concurrency",
    "TALLY_FAIR_TURNS": "fair_turns",
    "TALLY_RETENTION_DAYS": "retention_days",
    "TALLY_REPORTS_KEPT": "reports_kept",
    "TALLY_RETENTION_BATCH": "retention_batch",
    "TALLY_RETENTION_INTERVAL": "intervals.retention",
    "TALLY_WEBHOOK_ALLOW_PRIVATE": "webhooks.allow_private",
    "TALLY_WEBHOOK_TIMEOUT": "webhooks.timeout",
    "TALLY_WEBHOOK_BACKOFF": "webhooks.backoff",
    "TALLY_WEBHOOK_BACKOFF_MAX": "webhooks.backoff_max",
    "TALLY_WEBHOOK_GIVE_UP": "webhooks.give_up",
    "TALLY_WEBHOOK_CONCURRENCY": "webhooks.concurrency",
    "TALLY_WEBHOOK_PER_ENDPOINT": "webhooks.per_endpoint",
    "TALLY_WEBHOOK_INTERVAL": "webhooks.interval",
}
# Variables whose values never appear in an error message.
# How an error names the kind of value a variable takes.
WORDS = {"bool": "true or false", "int": "an integer", "float": "a number"}
SECRET_VARIABLES = frozenset(
    {"DATABASE_URL", "TALLY_FERNET_KEY", "TALLY_PROVIDER_TOKEN", "TALLY_METRICS_TOKEN"}
)
SECRET_VARIABLES |= {"DATABASE_DIRECT_URL", "REDIS_URL", "RABBITMQ_URL", "CLOUDAMQP_URL"}
SECRET_VARIABLES |= {"TALLY_JWT_SECRET", "TALLY_SERVICE_KEY"}


def _nest(given: Mapping[str, str]) -> dict[str, Any]:
    """Turn {variable: text} into the nested field layout of Settings."""
    data: dict[str, Any] = {}
    for name, raw in given.items():
        *parents, leaf = VARIABLES[name].split(".")
        target = data
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = READERS.get(name, str)(raw)
    return data


def _names(raw: str) -> list[str]:
    """A comma-separated list of names."""
    return [name.strip() for name in raw.split(",") if name.strip()]


# Variables read by more than conversion to their field's type.
READERS: dict[str, Callable[[str], object]] = {
    "DATABASE_URL": normalize_database_url,
    "DATABASE_DIRECT_URL": normalize_database_url,
    "TALLY_PROVIDERS": _names,
    "TALLY_CORS_ORIGINS": _names,
}


def _explain(error: msgspec.ValidationError, given: Mapping[str, str]) -> str:
    """One line naming the variable behind a validation error (at `$.intervals.lease`)."""
    message, _, path = str(error).rpartition(" - at `$.")
    field = path.rstrip("`").split("[")[0]  # `$.providers[1]` is the providers variable
    named = [n for n, target in VARIABLES.items() if target == field]
    name = next((n for n in reversed(named) if n in given), named[0])
    shown = "" if name in SECRET_VARIABLES else f" (got {given.get(name, '')!r})"
    choices = _choices(VARIABLES[name])
    if choices:
        return f"{name} must be one of {', '.join(choices)}{shown}"
    wanted = message.removeprefix("Expected ").split(", got ")[0].replace("`", "")
    kind, _, bound = wanted.partition(" ")
    wanted = " ".join(filter(None, (WORDS.get(kind, kind), bound)))
    return f"{name} must be {wanted}{shown}"


def _choices(path: str) -> tuple[str, ...]:
    """The allowed values of a field typed as a Literal, else ()."""
    struct: Any = Settings
    *parents, leaf = path.split(".")
    for parent in parents:
        struct = next(f.type for f in msgspec.structs.fields(struct) if f.name == parent)
    kind = next(f.type for f in msgspec.structs.fields(struct) if f.name == leaf)
    if get_origin(kind) is tuple:  # a list of names: each must be one of its choices
        kind = get_args(kind)[0]
    if get_origin(kind) is not Literal:
        return ()
    return tuple(str(v) for v in get_args(kind) if v != "")  # "" is the variable unset
