"""The web process's entry point: `uvicorn --factory web.main:app` calls `app` once."""

from __future__ import annotations

from starlette.applications import Starlette

from core.entry import settings_or_exit, tracing_or_exit
from core.logs import configure_logging
from core.settings import Settings
from web.app import create_app


def app() -> Starlette:
    """Read the settings, set up logging and build the app; refuse to start if misconfigured."""
    settings = settings_or_exit("web", Settings.require_broker)
    configure_logging(settings.log_format)
    tracing_or_exit("web")
    return create_app(settings)
