"""The demo user `tally dev` prints a token for: created on the first run, kept after."""

from __future__ import annotations

from pathlib import Path

from core.database import Database
from core.errors import Unauthorized
from core.users import authenticate, create_user

DEMO_USER_NAME = "demo"
DEMO_CREDITS = 10_000


def ensure_demo_user(database_url: str, data_dir: Path) -> tuple[str, str]:
    """Return the demo user's id and token, creating both on the first run."""
    token_file = data_dir / "demo-token"
    database = Database.from_settings_url(database_url)
    try:
        if token_file.exists():
            token = token_file.read_text().strip()
            try:
                return str(authenticate(database.sessions, token).user_id), token
            except Unauthorized:
                pass
        created = create_user(database.sessions, DEMO_USER_NAME, DEMO_CREDITS)
        token_file.write_text(created.token + "\n")
        token_file.chmod(0o600)
        return str(created.user_id), created.token
    finally:
        database.dispose()
