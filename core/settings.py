"""One typed settings object, read from the environment once per process."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from core.crypto import SecretBox
from core.errors import ConfigurationError

N = TypeVar("N", int, float)

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev", "development"})


def normalize_database_url(url: str) -> str:
    """Return a SQLAlchemy URL for psycopg2, accepting Heroku's postgres:// scheme."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def _parsed(env: Mapping[str, str], name: str, default: N, parse: Callable[[str], N]) -> N:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        kind = "an integer" if parse is int else "a number"
        raise ConfigurationError(f"{name} must be {kind}, got {raw!r}") from exc


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return _parsed(env, name, default, int)


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return _parsed(env, name, default, float)


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class SandboxOptions:
    """Behaviour of the sandbox provider."""

    failure_rate: float = 0.0
    transient_rate: float = 0.0
    latency_ms: float = 0.0


@dataclass(frozen=True)
class Intervals:
    """Periods, in seconds, of the reconcile daemon's jobs and the slice lease."""

    apply: float = 0.5
    sweep: float = 5.0
    recompute: float = 300.0
    report: float = 3600.0
    heartbeat: float = 2.0
    lease: float = 30.0
    stale_enqueue: float = 60.0
    leader_retry: float = 2.0


@dataclass(frozen=True)
class Settings:
    """Everything a tally process needs to know about its environment."""

    database_url: str
    redis_url: str
    rabbitmq_url: str = ""
    stub_broker: bool = False  # Dramatiq's in-memory broker, for unit tests only
    dramatiq_metrics: bool = False
    environment: str = "development"
    price: int = 1
    max_job_count: int = 100_000
    slice_size: int = 500
    provider: str = "sandbox"
    provider_concurrency: int = 256
    provider_attempts: int = 3
    provider_url: str = ""
    provider_token: str = ""
    provider_timeout: float = 10.0
    slice_max_attempts: int = 5
    fernet_key: str = ""
    apply_batch: int = 5000
    repair_drift: bool = False
    log_format: str = "text"
    sandbox: SandboxOptions = field(default_factory=SandboxOptions)
    intervals: Intervals = field(default_factory=Intervals)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (os.environ by default)."""
        env = os.environ if env is None else env
        settings = cls(
            database_url=normalize_database_url(env.get("DATABASE_URL", "")),
            redis_url=env.get("REDIS_URL", ""),
            rabbitmq_url=env.get("RABBITMQ_URL", ""),
            stub_broker=env.get("TALLY_BROKER") == "stub",
            dramatiq_metrics=_bool(env, "TALLY_DRAMATIQ_METRICS", False),
            environment=env.get("TALLY_ENV", "development"),
            price=_int(env, "TALLY_PRICE", 1),
            max_job_count=_int(env, "TALLY_MAX_JOB_COUNT", 100_000),
            slice_size=_int(env, "TALLY_SLICE_SIZE", 500),
            provider=env.get("TALLY_PROVIDER", "sandbox"),
            provider_concurrency=_int(env, "TALLY_PROVIDER_CONCURRENCY", 256),
            provider_attempts=_int(env, "TALLY_PROVIDER_ATTEMPTS", 3),
            provider_url=env.get("TALLY_PROVIDER_URL", ""),
            provider_token=env.get("TALLY_PROVIDER_TOKEN", ""),
            provider_timeout=_float(env, "TALLY_PROVIDER_TIMEOUT", 10.0),
            slice_max_attempts=_int(env, "TALLY_SLICE_MAX_ATTEMPTS", 5),
            fernet_key=env.get("TALLY_FERNET_KEY", ""),
            apply_batch=_int(env, "TALLY_APPLY_BATCH", 5000),
            repair_drift=_bool(env, "TALLY_REPAIR_DRIFT", False),
            log_format=env.get("LOG_FORMAT", "text"),
            sandbox=SandboxOptions(
                failure_rate=_float(env, "TALLY_SANDBOX_FAILURE_RATE", 0.0),
                transient_rate=_float(env, "TALLY_SANDBOX_TRANSIENT_RATE", 0.0),
                latency_ms=_float(env, "TALLY_SANDBOX_LATENCY_MS", 0.0),
            ),
            intervals=Intervals(
                apply=_float(env, "TALLY_APPLY_INTERVAL", 0.5),
                sweep=_float(env, "TALLY_SWEEP_INTERVAL", 5.0),
                recompute=_float(env, "TALLY_RECOMPUTE_INTERVAL", 300.0),
                report=_float(env, "TALLY_REPORT_INTERVAL", 3600.0),
                heartbeat=_float(env, "TALLY_HEARTBEAT_INTERVAL", 2.0),
                lease=_float(env, "TALLY_LEASE_SECONDS", 30.0),
                stale_enqueue=_float(env, "TALLY_STALE_ENQUEUE_SECONDS", 60.0),
                leader_retry=_float(env, "TALLY_LEADER_RETRY_SECONDS", 2.0),
            ),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse settings a process cannot run with."""
        if not self.database_url:
            raise ConfigurationError("DATABASE_URL is not set")
        if self.price < 0:
            raise ConfigurationError("TALLY_PRICE must not be negative")
        if self.slice_size < 1 or self.max_job_count < 1 or self.provider_concurrency < 1:
            raise ConfigurationError("slice size, max job count and concurrency must be positive")
        if self.environment != "development":
            if self.fernet_key in PLACEHOLDER_SECRETS:
                raise ConfigurationError(
                    "TALLY_FERNET_KEY must be set to a real key outside development"
                )
            SecretBox(self.fernet_key)  # raises ConfigurationError for a malformed key

    def with_changes(self, **changes: Any) -> Settings:
        """Return a copy with some fields replaced (tests build their own settings)."""
        return replace(self, **changes)
