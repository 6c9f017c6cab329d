"""Child processes that each lead a session of their own, stopped group and all.

A child starts in a new session, so its pid is also its process group id and one signal
reaches the program and everything it started. A stop sends SIGTERM to the leader alone
first (a dramatiq master then stops its workers in order), SIGTERM to what is left of the
group once the leader has exited, and SIGKILL to every group still alive after the grace.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

POLL_SECONDS = 0.05
STOP_GRACE_SECONDS = 10.0
KILL_WAIT_SECONDS = 5.0
LOG_TAIL_LINES = 60


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on `host` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def port_is_free(host: str, port: int) -> bool:
    """Whether nothing listens on host:port now (it can be bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def group_alive(pgid: int) -> bool:
    """Tell whether any live (not zombie) process remains in a process group."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    return any(_in_group(stat, pgid) for stat in proc.glob("[0-9]*/stat"))


def _in_group(stat: Path, pgid: int) -> bool:
    """Tell whether a /proc/<pid>/stat describes a live process of the group."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] not in ("Z", "X") and int(fields[2]) == pgid


@dataclass
class Child:
    """One child process leading its own process group; its output goes to `log` or a pipe."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path | None = None
    log_start: int = 0
    group_terminated: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        """The leader's process id."""
        return self.popen.pid

    @property
    def pgid(self) -> int:
        """The process group: the leader's pid, as it leads a session of its own."""
        return self.popen.pid

    @property
    def running(self) -> bool:
        """Whether the leader has not exited."""
        return self.popen.poll() is None

    def terminate(self) -> None:
        """Send SIGTERM to the leader only; it may stop its own children in order."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)

    def terminate_rest(self) -> None:
        """Once the leader has exited, send SIGTERM (once) to what is left of its group."""
        if not self.group_terminated and not self.running:
            self.group_terminated = True
            self.signal_group(signal.SIGTERM)

    def signal_group(self, signum: int) -> None:
        """Send a signal to every process of the child's group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signum)

    def gone(self) -> bool:
        """Tell whether the leader has exited and nothing is left in its group."""
        return not self.running and not group_alive(self.pgid)

    def kill(self) -> None:
        """SIGKILL the whole group, with no clean-up of any kind, and wait until it is gone."""
        kill_all([self])

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop the group: SIGTERM, up to `grace` seconds, then SIGKILL."""
        stop_all([self], grace)

    def log_text(self) -> str:
        """What this child wrote to its log so far."""
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_bytes()[self.log_start :].decode(errors="replace")

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of this child's log."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_for_log(self, needle: str, count: int = 1, timeout: float = 60.0) -> None:
        """Wait until `needle` appears `count` times in the log; fail if the child exits first."""
        deadline = time.monotonic() + timeout
        while self.log_text().count(needle) < count:
            if not self.running or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} never logged {needle!r}; see {self.log}")
            time.sleep(POLL_SECONDS)


def start(
    name: str,
    command: str | Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    shell: bool = False,
) -> Child:
    """Start a command in a session of its own; its output is appended to `log`, else piped."""
    if log is None:
        return Child(name, _popen(command, cwd, env, subprocess.PIPE, shell))
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        written_before = log.stat().st_size
        return Child(name, _popen(command, cwd, env, out.fileno(), shell), log, written_before)


def _popen(
    command: str | Sequence[str],
    cwd: Path | None,
    env: Mapping[str, str] | None,
    stdout: int,
    shell: bool,
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        shell=shell,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def terminate_all(children: Sequence[Child], grace: float) -> list[Child]:
    """SIGTERM every leader, then the rest of its group; return those left after `grace` s."""
    for child in children:
        child.terminate()
    return _wait_gone(children, time.monotonic() + grace)


def kill_all(children: Sequence[Child]) -> None:
    """SIGKILL every child's group and wait (a few seconds at most) until they are gone."""
    for child in children:
        child.signal_group(signal.SIGKILL)
    _wait_gone(children, time.monotonic() + KILL_WAIT_SECONDS)


def stop_all(children: Sequence[Child], grace: float = STOP_GRACE_SECONDS) -> list[Child]:
    """Stop the children within `grace` seconds, then kill the rest; return those killed."""
    left = terminate_all(children, grace)
    kill_all(left)
    return left


def _wait_gone(children: Sequence[Child], deadline: float) -> list[Child]:
    """Wait until the children are gone or the deadline passes; return those still there."""
    left = list(children)
    while True:
        for child in left:
            child.terminate_rest()
        left = [child for child in left if not child.gone()]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(POLL_SECONDS)
