"""Operator commands: migrate, user create, credits grant, token issue and revoke."""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from core import credits, migrate
from core.database import Database
from core.errors import InvalidInput
from core.settings import Settings
from core.users import create_user, issue, revoke_token


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
    create.add_argument("--id", dest="user_id", help="the user's id (the frontend's user id)")
    create.set_defaults(handler=run_user_create)

    credit = commands.add_parser("credits", help="manage credits").add_subparsers(
        dest="credits_command", required=True, metavar="ACTION"
    )
    grant = credit.add_parser("grant", help="add credits to a user's balance")
    grant.add_argument("user_id")
    grant.add_argument("amount", type=int)
    grant.add_argument("--note", default="granted by operator")
    grant.add_argument(
        "--reference", help="a payment id: the grant applies once; a negative amount refunds"
    )
    grant.set_defaults(handler=run_credits_grant)

    security = commands.add_parser(
        "rls", help="row-level security for the frontend's direct reads (on or off)"
    )
    security.add_argument("state", choices=["on", "off"])
    security.set_defaults(handler=run_rls)

    token = commands.add_parser("token", help="manage API tokens").add_subparsers(
        dest="token_command", required=True, metavar="ACTION"
    )
    issue_parser = token.add_parser("issue", help="issue another token for a user (shown once)")
    issue_parser.add_argument("user_id")
    issue_parser.add_argument("--label", default="")
    issue_parser.set_defaults(handler=run_token_issue)
    revoke = token.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id", type=int)
    revoke.set_defaults(handler=run_token_revoke)


def _database(args: argparse.Namespace) -> Database:
    return Database.from_settings_url(Settings.from_env(args.env).database_url)


def run_migrate(args: argparse.Namespace) -> int:
    """Apply every pending migration."""
    settings = Settings.from_env(args.env)
    migrate.upgrade(settings.direct_database_url, rls=settings.rls)
    print("database is at the latest schema")
    return 0


def run_user_create(args: argparse.Namespace) -> int:
    """Create a user and print its id and token (the token is not shown again)."""
    user_id = _user_id(args.user_id) if args.user_id else None
    database = _database(args)
    try:
        created = create_user(
            database.sessions, args.name, args.credits, is_admin=args.admin, user_id=user_id
        )
    finally:
        database.dispose()
    print(f"user_id: {created.user_id}")
    print(f"token:   {created.token}")
    print(f"token_id: {created.token_id}")
    print("(the token is stored hashed and will not be shown again)")
    return 0


def run_credits_grant(args: argparse.Namespace) -> int:
    """Grant credits to a user and print the new balance."""
    user_id = _user_id(args.user_id)
    database = _database(args)
    try:
        if args.reference:
            done = credits.grant_once(
                database.sessions, user_id, args.amount, args.reference, args.note
            )
            balance = done.balance
            if not done.applied:
                print(f"reference {args.reference!r} was applied before; nothing changed")
        else:
            balance = credits.grant(database.sessions, user_id, args.amount, note=args.note)
    finally:
        database.dispose()
    print(f"balance of {user_id}: {balance}")
    return 0


def run_token_issue(args: argparse.Namespace) -> int:
    """Issue another token for a user and print it once, with the id that revokes it."""
    user_id = _user_id(args.user_id)
    database = _database(args)
    try:
        issued = issue(database.sessions, user_id, args.label)
    finally:
        database.dispose()
    print(f"token_id: {issued.id}")
    print(f"token:   {issued.token}")
    print("(the token is stored hashed and will not be shown again)")
    return 0


def run_token_revoke(args: argparse.Namespace) -> int:
    """Revoke one token by its id."""
    database = _database(args)
    try:
        revoke_token(database.sessions, args.token_id)
    finally:
        database.dispose()
    print(f"token {args.token_id} revoked; web processes refuse it within 5 s")
    return 0


def _user_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise InvalidInput("USER must be a user id (UUID)") from exc


def run_rls(args: argparse.Namespace) -> int:
    """Turn row-level security for the `authenticated` role on or off."""
    migrate.row_level_security(
        Settings.from_env(args.env).direct_database_url, enabled=args.state == "on"
    )
    print(f"row-level security for the authenticated role is {args.state}")
    return 0
