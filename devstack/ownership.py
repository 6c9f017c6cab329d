"""A data folder belongs to one running `tally dev`: an exclusive lock held for its life.

The lock (flock on `stack.lock`) is released by the kernel when its holder exits, however
it exits, so a crashed run never leaves the folder claimed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

from core.errors import ConfigurationError

LOCK_FILE = "stack.lock"


class DataDirClaim:
    """This process's exclusive hold on a data folder, until `release` or exit."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the folder, or refuse with one line naming the run that holds it."""
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(handle)
            handle.close()
            raise ConfigurationError(
                f"another `tally dev` ({holder}) is running with {self.path.parent}; "
                "stop it first, or give this one its own --data-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        """Give the folder up."""
        if self._file is not None:
            self._file.close()  # closing the file releases the lock
            self._file = None


def is_claimed(data_dir: Path) -> bool:
    """Whether a running `tally dev` holds this folder (without disturbing it)."""
    path = data_dir / LOCK_FILE
    if not path.exists():
        return False
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def _holder(handle: IO[str]) -> str:
    with contextlib.suppress(OSError, ValueError):
        handle.seek(0)
        return f"pid {int(handle.read().strip())}"
    return "pid unknown"
