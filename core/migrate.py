"""Run Alembic migrations from code (the CLI, the embedded run and the tests)."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from alembic import command
from core import rls
from core.settings import normalize_database_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str) -> Config:
    """Return an Alembic config for the project's migrations and this database."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def upgrade(database_url: str, revision: str = "head", *, rls: bool | None = None) -> None:
    """Migrate the database up to a revision (head by default).

    `rls` turns row-level security on or off where a migration sets it up; None leaves the
    migrations to read TALLY_RLS from the environment.
    """
    config = alembic_config(database_url)
    if rls is not None:
        config.attributes["rls"] = rls
    command.upgrade(config, revision)
    if rls and revision == "head":
        row_level_security(database_url, enabled=True)  # tables added since, too


def row_level_security(database_url: str, *, enabled: bool) -> None:
    """Turn the frontend's row-level security on or off now, in one transaction."""
    engine = create_engine(normalize_database_url(database_url), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            (rls.enable if enabled else rls.disable)(connection)
    finally:
        engine.dispose()


def downgrade(database_url: str, revision: str = "base") -> None:
    """Migrate the database down to a revision (base by default)."""
    command.downgrade(alembic_config(database_url), revision)
