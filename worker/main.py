"""The worker process's entry point: `dramatiq worker.main:setup` calls `setup` after fork.

Settings are read here, once per worker process, and checked before any message is taken:
a worker that could not seal secrets or reach a broker refuses to start.
"""

from __future__ import annotations

import dramatiq

from core.entry import settings_or_exit, tracing_or_exit
from core.logs import configure_logging
from core.settings import Settings
from worker.broker import worker_broker


def setup() -> None:
    """Build this process's broker from the environment and make it Dramatiq's."""
    settings = settings_or_exit("worker", Settings.require_broker, Settings.secret_box)
    if settings.log_format == "json":  # text stays in Dramatiq's own format (process, thread)
        configure_logging(settings.log_format)
    tracing_or_exit("worker")
    dramatiq.set_broker(worker_broker(settings))
