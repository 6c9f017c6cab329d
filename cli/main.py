"""Entry point of the `tally` console script: one sub-command per module."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from core.errors import TallyError
from devstack.discovery import with_running_stack

COMMAND_MODULES = (
    "devstack.dev",
    "cli.admin",
    "cli.client",
    "cli.report",
    "cli.outbox",
    "cli.environment",
)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every sub-command registered."""
    parser = argparse.ArgumentParser(prog="tally", description="Bulk account jobs, exact stats.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `tally` command and return its exit status."""
    args = build_parser().parse_args(argv)
    # The environment every command reads, once: a running dev stack fills in its servers.
    args.env = with_running_stack(os.environ)
    try:
        status: int = args.handler(args)
    except TallyError as exc:
        print(f"tally: {exc}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
