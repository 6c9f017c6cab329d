"""`python -m webhooks`: deliver terminal job statuses to users' endpoints."""

from __future__ import annotations

from core.entry import settings_or_exit
from core.logs import configure_logging
from core.settings import Settings
from webhooks.daemon import run


def main() -> None:
    """Read settings once (a valid Fernet key is required) and run the daemon."""
    settings = settings_or_exit("webhooks", Settings.secret_box)
    configure_logging(settings.log_format)
    run(settings)


if __name__ == "__main__":
    main()
