"""`tally outbox list` and `tally outbox retry`: the outbox rows the apply set aside."""

from __future__ import annotations

import argparse
import json
from typing import Any

from core.database import Database
from core.settings import Settings
from outbox.quarantine import QuarantinedRow, list_quarantined, retry

MAX_LISTED = 1000


def register(commands: Any) -> None:
    """Add the `outbox` sub-commands."""
    outbox = commands.add_parser(
        "outbox", help="outbox rows the apply set aside (quarantined)"
    ).add_subparsers(dest="outbox_command", required=True, metavar="ACTION")
    listing = outbox.add_parser("list", help="the quarantined rows, oldest first, with why")
    listing.add_argument(
        "--limit",
        type=int,
        default=100,
        choices=range(1, MAX_LISTED + 1),
        metavar=f"1..{MAX_LISTED}",
    )
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=run_list)
    again = outbox.add_parser(
        "retry", help="apply quarantined rows again once the cause is fixed (each exactly once)"
    )
    again.add_argument(
        "--id", dest="ids", type=int, action="append", help="only this row (repeatable)"
    )
    again.set_defaults(handler=run_retry)


def _database(args: argparse.Namespace) -> Database:
    return Database.from_settings_url(Settings.from_env(args.env).database_url)


def run_list(args: argparse.Namespace) -> int:
    """Print the quarantined rows."""
    database = _database(args)
    try:
        rows = list_quarantined(database.sessions, args.limit)
    finally:
        database.dispose()
    for row in rows:
        print(json.dumps(_plain(row)) if args.json else _line(row))
    if not rows and not args.json:
        print("no outbox row is quarantined")
    return 0


def run_retry(args: argparse.Namespace) -> int:
    """Apply quarantined rows again; exit 1 when one is still refused."""
    database = _database(args)
    try:
        done = retry(database.sessions, args.ids)
    finally:
        database.dispose()
    print(f"applied: {len(done.applied)} {done.applied}")
    if done.still_quarantined:
        print(f"still quarantined: {len(done.still_quarantined)} {done.still_quarantined}")
        return 1
    return 0


def _line(row: QuarantinedRow) -> str:
    when = row.quarantined_at.isoformat(timespec="seconds")
    return f"{row.id}  {row.topic}  user {row.user_id}  set aside {when}: {row.error}"


def _plain(row: QuarantinedRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "topic": row.topic,
        "key": row.key,
        "user_id": str(row.user_id),
        "payload": row.payload,
        "created_at": row.created_at.isoformat(),
        "quarantined_at": row.quarantined_at.isoformat(),
        "error": row.error,
    }
