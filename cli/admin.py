"""Operator commands: migrate, user create, credits grant."""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from core import credits, migrate
from core.database import Database
from core.errors import InvalidInput
from core.settings import Settings
from core.users import create_user


def register(commands: Any) -> None:
    """Add the operator sub-commands to the `tally` parser."""
    migrate_parser = commands.add_parser(
        "migrate", help="migrate the database to the latest schema"
    )
    migrate_parser.set_defaults(handler=run_migrate)

    user = commands.add_parser("user", help="manage users").add_subparsers(
        dest="user_command", required=True, metavar="ACTION"
    )
    create = user.add_parser("create", help="create a user; prints its id and token once")
    create.add_argument("--name", default="user")
    create.add_argument("--credits", type=int, default=0)
    create.add_argument("--admin", action="store_true", help="may read reconciliation reports")
    create.set_defaults(handler=run_user_create)

    credit = commands.add_parser("credits", help="manage credits").add_subparsers(
        dest="credits_command", required=True, metavar="ACTION"
    )
    grant = credit.add_parser("grant", help="add credits to a user's balance")
    grant.add_argument("user_id")
    grant.add_argument("amount", type=int)
    grant.add_argument("--note", default="granted by operator")
    grant.set_defaults(handler=run_credits_grant)


def _database(args: argparse.Namespace) -> Database:
    return Database.from_settings_url(Settings.from_env(args.env).database_url)


def run_migrate(args: argparse.Namespace) -> int:
    """Apply every pending migration."""
    migrate.upgrade(Settings.from_env(args.env).database_url)
    print("database is at the latest schema")
    return 0


def run_user_create(args: argparse.Namespace) -> int:
    """Create a user and print its id and token (the token is not shown again)."""
    database = _database(args)
    try:
        created = create_user(database.sessions, args.name, args.credits, is_admin=args.admin)
    finally:
        database.dispose()
    print(f"user_id: {created.user_id}")
    print(f"token:   {created.token}")
    print("(the token is stored hashed and will not be shown again)")
    return 0


def run_credits_grant(args: argparse.Namespace) -> int:
    """Grant credits to a user and print the new balance."""
    try:
        user_id = uuid.UUID(args.user_id)
    except ValueError as exc:
        raise InvalidInput("USER must be a user id (UUID)") from exc
    database = _database(args)
    try:
        balance = credits.grant(database.sessions, user_id, args.amount, note=args.note)
    finally:
        database.dispose()
    print(f"balance of {user_id}: {balance}")
    return 0
