"""Run the Procfile's processes: `release` first, then the others until one stops or we are told to.

Each process runs through the shell in a session (process group) of its own. A simple command
is started with `exec`, so the program itself leads the group and gets the first SIGTERM alone:
a dramatiq master then stops its workers gracefully instead of all of them being signalled
twice. Once the leader is gone the rest of its group gets SIGTERM, and whatever is still there
after the grace period gets SIGKILL, so nothing is left behind.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, TextIO

from core.errors import ConfigurationError
from core.migrate import PROJECT_ROOT
from devstack.processes import Child, kill_all, start, terminate_all

PROCFILE = PROJECT_ROOT / "Procfile"
RELEASE = "release"
SYSTEM = "system"
POLL_SECONDS = 0.05
_LINE = re.compile(r"^(?P<name>[A-Za-z0-9_-]+)\s*:\s*(?P<command>\S.*)$")
_NOT_SIMPLE = re.compile(r"[;&|()<>`\n]")
_COMPOUND_WORD = re.compile(r"^(?:!|\{|\[\[|case|exec|for|function|if|select|time|until|while)$")


@dataclass(frozen=True)
class ProcessType:
    """One line of a Procfile: a name and the shell command that runs it."""

    name: str
    command: str


def parse_procfile(text: str) -> list[ProcessType]:
    """Return the process types of a Procfile's text, in file order."""
    types: list[ProcessType] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ConfigurationError(f"Procfile line {number} is not 'name: command': {raw!r}")
        if any(known.name == match["name"] for known in types):
            raise ConfigurationError(f"Procfile names {match['name']!r} twice")
        types.append(ProcessType(match["name"], match["command"].strip()))
    return types


def read_procfile(path: Path = PROCFILE) -> list[ProcessType]:
    """Read and parse a Procfile."""
    try:
        return parse_procfile(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigurationError(f"no Procfile at {path}") from exc


def shell_command(command: str) -> str:
    """Return the command for `sh -c`, prefixed with `exec` when it is one simple command."""
    first = command.split(maxsplit=1)[0]
    if _NOT_SIMPLE.search(command) or _COMPOUND_WORD.match(first) or "=" in first:
        return command
    return f"exec {command}"


def child_environment(env: Mapping[str, str]) -> dict[str, str]:
    """Return `env` with this interpreter's bin folder first on PATH and unbuffered Python."""
    bin_dir = str(Path(sys.executable).parent)
    path = [bin_dir, *(p for p in env.get("PATH", os.defpath).split(os.pathsep) if p != bin_dir)]
    return {**env, "PATH": os.pathsep.join(path), "PYTHONUNBUFFERED": "1"}


class Supervisor:
    """Runs a Procfile's processes and stops all of them together."""

    def __init__(
        self,
        procfile: Path = PROCFILE,
        *,
        output: TextIO | None = None,
        grace: float = 10.0,
    ) -> None:
        self.types = read_procfile(procfile)
        self.cwd = procfile.parent
        self.output = output if output is not None else sys.stdout
        self.grace = grace
        self.children: list[Child] = []
        self._readers: dict[str, threading.Thread] = {}
        self._width = max([len(SYSTEM), *(len(t.name) + 2 for t in self.types)])
        self._write_lock = threading.Lock()
        self._stop_reason: str | None = None
        self._watched: list[tuple[str, Callable[[], bool]]] = []
        self.signalled = False

    def request_stop(self, reason: str) -> None:
        """Ask the supervisor to stop; safe to call from a signal handler."""
        if self._stop_reason is None:
            self._stop_reason = reason

    @contextmanager
    def handle_signals(self) -> Iterator[None]:
        """Turn SIGINT and SIGTERM into stop requests while the block runs."""

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            self.signalled = True
            self.request_stop(f"received {signal.Signals(signum).name}")

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                if handler is not None:
                    signal.signal(sig, handler)

    def watch(self, name: str, alive: Callable[[], bool]) -> None:
        """Stop the formation if something it depends on (a server) is no longer alive."""
        self._watched.append((name, alive))

    def poll(self) -> str | None:
        """Return why the formation should stop (a stop request, a child or server gone)."""
        if self._stop_reason is None:
            for child in self.children:
                status = child.popen.poll()
                if status is not None:
                    self.request_stop(f"{child.name} exited with status {status}")
            for name, alive in self._watched:
                if not alive():
                    self.request_stop(f"{name} stopped unexpectedly")
        return self._stop_reason

    def run_release(self, env: Mapping[str, str]) -> int:
        """Run the `release` process to completion and return its exit status (0 if none)."""
        release = next((t for t in self.types if t.name == RELEASE), None)
        if release is None:
            return 0
        child = self._spawn(f"{RELEASE}.1", release.command, env)
        while child.popen.poll() is None and self._stop_reason is None:
            time.sleep(POLL_SECONDS)
        self._shutdown([child])
        status = child.popen.returncode
        self.say(f"{child.name} exited with status {status}")
        return status

    def start(self, env: Mapping[str, str], concurrency: Mapping[str, int] | None = None) -> None:
        """Start every process type but `release`, `concurrency[name]` copies of each (1)."""
        counts = concurrency or {}
        for process_type in self.types:
            if process_type.name == RELEASE:
                continue
            for number in range(1, counts.get(process_type.name, 1) + 1):
                label = f"{process_type.name}.{number}"
                self.children.append(self._spawn(label, process_type.command, env))

    def wait(self) -> str:
        """Block until a stop is requested or a child exits, and return the reason."""
        while (reason := self.poll()) is None:
            time.sleep(POLL_SECONDS * 2)
        return reason

    def stop(self) -> None:
        """Stop every child's process group: SIGTERM, a grace period, then SIGKILL."""
        self.request_stop("stopping")
        self._shutdown(self.children)

    def say(self, message: str) -> None:
        """Print a line of the supervisor's own, prefixed like the children's."""
        self._write(SYSTEM, message)

    def announce(self, text: str) -> None:
        """Print text as is, without interleaving it with the children's lines."""
        with self._write_lock:
            self.output.write(text if text.endswith("\n") else text + "\n")
            self.output.flush()

    def _spawn(self, label: str, command: str, env: Mapping[str, str]) -> Child:
        """Start one shell command in a session of its own, its output forwarded."""
        child = start(
            label, shell_command(command), cwd=self.cwd, env=child_environment(env), shell=True
        )
        reader = threading.Thread(
            target=self._forward,
            args=(label, child.popen.stdout),
            name=f"{label}-output",
            daemon=True,
        )
        reader.start()
        self._readers[label] = reader
        self.say(f"{label} started (pid {child.pid}): {command}")
        return child

    def _forward(self, label: str, stream: IO[bytes] | None) -> None:
        """Copy a child's output to ours, line by line, with its label in front."""
        if stream is None:
            return
        with stream:
            for raw in iter(stream.readline, b""):
                self._write(label, raw.decode("utf-8", errors="replace").rstrip("\r\n"))

    def _write(self, label: str, line: str) -> None:
        """Write one labelled line."""
        with self._write_lock:
            self.output.write(f"{label.ljust(self._width)} | {line}\n")
            self.output.flush()

    def _shutdown(self, children: Sequence[Child]) -> None:
        """Terminate the children and their groups, wait up to the grace, then kill what is left."""
        left = terminate_all(children, self.grace)
        for child in left:
            self.say(f"{child.name} did not stop within {self.grace:g}s; killing it")
        kill_all(left)
        for child in children:
            reader = self._readers.pop(child.name, None)
            if reader is not None:
                reader.join(timeout=1.0)
