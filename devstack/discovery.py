"""How commands run inside a folder with a running `tally dev` find its servers.

`tally dev` writes `stack.json` in its data folder once the web process answers: the
URLs of its servers and where its demo token is. A command that is not given
DATABASE_URL, REDIS_URL, TALLY_URL or TALLY_TOKEN takes them from there, as long as
that run still holds the folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from devstack.ownership import is_claimed

STACK_FILE = "stack.json"
DEFAULT_DATA_DIR = Path(".tally")


@dataclass(frozen=True)
class RunningStack:
    """What a running `tally dev` offers to other commands."""

    url: str
    database_url: str
    redis_url: str
    token_file: str

    def environment(self) -> dict[str, str]:
        """The variables a command needs to reach this stack."""
        token = Path(self.token_file)
        return {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "TALLY_URL": self.url,
            "TALLY_TOKEN": token.read_text().strip() if token.exists() else "",
        }

    def export_line(self) -> str:
        """A shell line that sets the same variables in another terminal."""
        values = self.environment()
        return "export " + " ".join(f"{name}='{value}'" for name, value in values.items())


def publish(data_dir: Path, stack: RunningStack) -> Path:
    """Write the stack file (mode 0600: it names where the demo token is)."""
    path = data_dir / STACK_FILE
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(asdict(stack), file)
    return path


def withdraw(data_dir: Path) -> None:
    """Remove the stack file as the run stops."""
    (data_dir / STACK_FILE).unlink(missing_ok=True)


def running_stack(data_dir: Path = DEFAULT_DATA_DIR) -> RunningStack | None:
    """The stack running with this folder, if one is."""
    path = data_dir / STACK_FILE
    if not path.exists() or not is_claimed(data_dir):
        return None
    try:
        return RunningStack(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None


def with_running_stack(env: Mapping[str, str], data_dir: Path = DEFAULT_DATA_DIR) -> dict[str, str]:
    """The environment, completed from a running dev stack where it names no servers.

    Servers come as a pair (never a dev Redis beside another database), and the demo
    token only with the stack's own URL.
    """
    stack = running_stack(data_dir)
    merged = dict(env)
    if stack is None:
        return merged
    found = stack.environment()
    if not env.get("DATABASE_URL") and not env.get("REDIS_URL"):
        merged.update(DATABASE_URL=found["DATABASE_URL"], REDIS_URL=found["REDIS_URL"])
    if not env.get("TALLY_URL"):
        merged["TALLY_URL"] = found["TALLY_URL"]
        if not env.get("TALLY_TOKEN") and found["TALLY_TOKEN"]:
            merged["TALLY_TOKEN"] = found["TALLY_TOKEN"]
    return merged
