"""`tally env`: the export line that points a shell at the `tally dev` running here."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.errors import NotFound
from devstack.discovery import DEFAULT_DATA_DIR, running_stack


def register(commands: Any) -> None:
    """Add the `env` sub-command."""
    parser = commands.add_parser(
        "env",
        help="print the export line for the tally dev running in this folder",
        description="Print DATABASE_URL, REDIS_URL, TALLY_URL and TALLY_TOKEN of the running "
        '`tally dev` as one export line: eval "$(tally env)" in another shell.',
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="default ./.tally")
    parser.set_defaults(handler=run_env)


def run_env(args: argparse.Namespace) -> int:
    """Print the export line, or say that nothing runs here."""
    stack = running_stack(args.data_dir)
    if stack is None:
        raise NotFound(f"no tally dev is running with {args.data_dir}; start one with `tally dev`")
    print(stack.export_line())
    return 0
