"""`python -m reconcile`: run the reconcile daemon."""

from __future__ import annotations

import logging

from core.logs import configure_logging
from core.settings import Settings
from reconcile.daemon import run


def main() -> None:
    """Read settings from the environment and run the daemon."""
    settings = Settings.from_env()
    configure_logging(settings.log_format)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    from worker.dispatch import enqueue_slices

    run(settings, enqueue_slices)


if __name__ == "__main__":
    main()
