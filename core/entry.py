"""What every process does first: read its settings once, or refuse to start."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping

from core.errors import ConfigurationError
from core.settings import Settings
from core.tracing import TracingConfig, configure_tracing

Requirement = Callable[[Settings], object]


def settings_or_exit(
    process: str, *requirements: Requirement, env: Mapping[str, str] | None = None
) -> Settings:
    """Return the process's settings; on bad configuration print one line and exit 2."""
    try:
        settings = Settings.from_env(env)
        for requirement in requirements:
            requirement(settings)
    except ConfigurationError as exc:
        print(f"tally {process}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    return settings


def tracing_or_exit(process: str, env: Mapping[str, str] | None = None) -> bool:
    """Start tracing from the OTEL_* variables (off when none is set); exit 2 if misconfigured."""
    try:
        config = TracingConfig.from_env(os.environ if env is None else env)
    except ConfigurationError as exc:
        print(f"tally {process}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    return configure_tracing(process, config)
