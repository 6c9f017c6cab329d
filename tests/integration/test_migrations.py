"""Migrations run from empty to head, back to base, and up again; head matches the models."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, Index, create_engine, text

from core.migrate import alembic_config, downgrade, upgrade
from core.schema import Base
from core.settings import normalize_database_url
from tests.conftest import create_database, drop_database


@pytest.fixture
def empty_database_url(server_database_url: str) -> Iterator[str]:
    """A brand-new, empty database of its own, dropped afterwards."""
    name = f"tally_migrations_{os.getpid()}_{secrets.token_hex(3)}"
    url = create_database(server_database_url, name)
    try:
        yield url
    finally:
        drop_database(server_database_url, name)


def relations(url: str) -> dict[str, set[str]]:
    """Every table, sequence, view and type in the public schema, by kind."""
    engine = create_engine(normalize_database_url(url))
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT c.relkind::text AS kind, c.relname AS name FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S', 'v', 'm', 'p') "
                    "UNION ALL SELECT 'type', t.typname FROM pg_type t "
                    "JOIN pg_namespace n ON n.oid = t.typnamespace "
                    "WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd')"
                )
            ).all()
    finally:
        engine.dispose()
    found: dict[str, set[str]] = {}
    for kind, name in rows:
        found.setdefault(kind, set()).add(name)
    return found


def current_revision(url: str) -> str | None:
    engine = create_engine(normalize_database_url(url))
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def schema_differences(url: str) -> list[object]:
    engine = create_engine(normalize_database_url(url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def model_checks_and_partial_indexes() -> tuple[set[str], set[str]]:
    """Names the models give their CHECK constraints and partial indexes."""
    checks, partial = set(), set()
    for table in Base.metadata.tables.values():
        for constraint in table.constraints:
            if isinstance(constraint, CheckConstraint):
                checks.add(str(constraint.name))
        for index in table.indexes:
            if (
                isinstance(index, Index)
                and index.dialect_options["postgresql"]["where"] is not None
            ):
                partial.add(str(index.name))
    return checks, partial


def database_checks_and_partial_indexes(url: str) -> tuple[set[str], set[str]]:
    """The same names, read from the migrated database."""
    engine = create_engine(normalize_database_url(url))
    try:
        with engine.connect() as connection:
            checks = connection.execute(
                text(
                    "SELECT conname FROM pg_constraint c JOIN pg_namespace n "
                    "ON n.oid = c.connamespace WHERE n.nspname = 'public' AND contype = 'c'"
                )
            ).scalars()
            partial = connection.execute(
                text(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' "
                    "AND indexdef LIKE '%WHERE%'"
                )
            ).scalars()
            return set(checks), set(partial)
    finally:
        engine.dispose()


def test_migrations_have_one_head_and_a_chained_history() -> None:
    scripts = ScriptDirectory.from_config(alembic_config("postgresql://unused/unused"))
    assert len(scripts.get_heads()) == 1
    revisions = list(scripts.walk_revisions())
    assert revisions[-1].down_revision is None
    assert all(r.down_revision is not None for r in revisions[:-1])


def test_upgrade_downgrade_upgrade_from_empty(empty_database_url: str) -> None:
    url = empty_database_url
    assert relations(url) == {}
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()

    upgrade(url)
    tables = relations(url)["r"]
    assert set(Base.metadata.tables) <= tables
    assert tables - set(Base.metadata.tables) == {"alembic_version"}
    assert current_revision(url) == head

    downgrade(url, "base")
    assert relations(url) == {"r": {"alembic_version"}}
    assert current_revision(url) is None

    upgrade(url)
    assert relations(url)["r"] == tables
    assert current_revision(url) == head


def test_migrated_schema_matches_the_models(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    assert schema_differences(empty_database_url) == []
    # Autogenerate compares neither CHECK constraints nor partial-index predicates.
    assert database_checks_and_partial_indexes(empty_database_url) == (
        model_checks_and_partial_indexes()
    )


def test_the_comparison_notices_a_schema_that_drifted(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    engine = create_engine(normalize_database_url(empty_database_url))
    try:
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE user_stats ALTER COLUMN requested DROP NOT NULL"))
            connection.execute(text("DROP INDEX ix_outbox_pending"))
            connection.execute(
                text(
                    "ALTER TABLE user_credits DROP CONSTRAINT ck_user_credits_balance_not_negative"
                )
            )
    finally:
        engine.dispose()
    differences = repr(schema_differences(empty_database_url))
    assert "ix_outbox_pending" in differences and "modify_nullable" in differences
    checks, partial = database_checks_and_partial_indexes(empty_database_url)
    assert "ck_user_credits_balance_not_negative" not in checks
    assert "ix_outbox_pending" not in partial


def test_each_revision_downgrades_to_its_predecessor(empty_database_url: str) -> None:
    url = empty_database_url
    scripts = ScriptDirectory.from_config(alembic_config(url))
    chain = [r.revision for r in reversed(list(scripts.walk_revisions()))]
    for revision in chain:
        upgrade(url, revision)
        assert current_revision(url) == revision
    for revision, previous in zip(reversed(chain), [*reversed(chain[:-1]), None], strict=True):
        assert current_revision(url) == revision
        downgrade(url, previous or "base")
    assert relations(url) == {"r": {"alembic_version"}}
