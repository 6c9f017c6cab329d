"""`python -m reconcile`: run the reconcile daemon."""

from __future__ import annotations

import functools
import logging

import prometheus_client

from core.broker import make_broker
from core.entry import settings_or_exit, tracing_or_exit
from core.logs import configure_logging
from core.settings import Settings
from core.turn_messages import send_turns
from reconcile.daemon import run


def main() -> None:
    """Read settings from the environment once and run the daemon."""
    settings = settings_or_exit("reconcile", Settings.require_broker)
    configure_logging(settings.log_format)
    tracing_or_exit("reconcile")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    broker = make_broker(settings)
    if settings.metrics_port:
        # Its own measurements (apply batches), for a scraper that reads every process.
        prometheus_client.start_http_server(settings.metrics_port)
    try:
        run(settings, functools.partial(send_turns, broker))
    finally:
        broker.close()


if __name__ == "__main__":
    main()
