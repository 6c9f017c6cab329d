"""Provider names and how to build each one from settings."""

from __future__ import annotations

from collections.abc import Sequence

from core.errors import UnknownProvider
from core.providers.base import Provider
from core.providers.http import HttpProvider
from core.providers.sandbox import SandboxProvider
from core.settings import Settings
from core.vocabulary import PROVIDER_NAMES


def check_provider_name(name: str) -> str:
    """Return the name if a provider of that name exists, else raise UnknownProvider."""
    if name not in PROVIDER_NAMES:
        raise UnknownProvider(
            f"unknown provider {name!r}; known: {', '.join(PROVIDER_NAMES)}", field="provider"
        )
    return name


def check_offered(name: str, offered: Sequence[str]) -> str:
    """Return the name if users may choose that provider here, else raise UnknownProvider."""
    check_provider_name(name)
    if name not in offered:
        raise UnknownProvider(
            f"provider {name!r} is not offered here; choose one of: {', '.join(offered)}",
            field="provider",
        )
    return name


def build_provider(name: str, settings: Settings) -> Provider:
    """Return a ready provider instance for a job."""
    check_provider_name(name)
    if name == "http":
        return HttpProvider(
            settings.provider_url,
            settings.provider_timeout,
            settings.provider_token,
            concurrency=settings.provider_concurrency,
        )
    return SandboxProvider(settings.sandbox)
