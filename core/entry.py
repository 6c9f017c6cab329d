"""What every process does first: read its settings once, or refuse to start."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping

from core.errors import ConfigurationError
from core.settings import Settings

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
