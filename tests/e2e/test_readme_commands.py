"""Every command of the README, pasted in order into one fresh shell on a copy of the project.

The copy gets its own virtualenv and its own `.tally/` stack, exactly as a newcomer's clone
would. Commands that run until stopped are bounded: `tally dev` runs in the background from
its banner to the end, and the other long ones must still be running after a while, then
are interrupted. The test command itself only collects the suite (it cannot run inside
itself).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from core.migrate import PROJECT_ROOT
from devstack.processes import Child, start

README = PROJECT_ROOT / "README.md"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)
PORT = 8000  # the README's commands name it
# A long-running command that does not fail within this many seconds is taken as working.
STILL_RUNNING_SECONDS = 12
READY_SECONDS = 300


@dataclass(frozen=True)
class Bounded:
    """How to run a command that does not end by itself."""

    marker: str  # a piece of the command line that identifies it
    ready: str | None  # a line its output shows once it is ready; None: it must keep running


BACKGROUND = Bounded("tally dev", "Ctrl-C to stop")
BOUNDED = (Bounded("honcho start", None), Bounded("bench all", None))
TEST_COMMAND = "python -m pytest"


def readme_commands(text: str) -> list[str]:
    """Every command line of the README's `sh` blocks, in order, comments left out."""
    commands = []
    for block in BLOCK.findall(text):
        for line in block.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                commands.append(line)
    return commands


def shell_script(commands: list[str], logs: Path) -> str:
    """One bash script that runs the commands as a person pasting them would."""
    lines = [
        # Job control: each background command leads a process group of its own, and gets
        # Ctrl-C (SIGINT) as from a terminal; without it, bash starts them ignoring SIGINT.
        "set -euo pipefail -m",
        f"wait_for_line() {{ for _ in $(seq {READY_SECONDS * 4}); do "
        'grep -qF "$2" "$1" && return 0; kill -0 "$3" 2>/dev/null || break; sleep 0.25; done; '
        'echo "never ready: $1"; cat "$1"; return 1; }',
        f"keeps_running() {{ for _ in $(seq {STILL_RUNNING_SECONDS * 4}); do "
        'kill -0 "$1" 2>/dev/null || { wait "$1"; echo "stopped early: $2"; cat "$2"; '
        "return 1; }; sleep 0.25; done; }",
    ]
    for number, command in enumerate(commands):
        shown = shlex.quote(f"$ {command}")
        lines += [f'echo "[$(date +%T)]" {shown}', *_run(command, number, logs)]
    lines += ['kill -INT -- "-$DEV"', 'wait "$DEV"', "echo README-DONE"]
    return "\n".join(lines) + "\n"


def _run(command: str, number: int, logs: Path) -> list[str]:
    log = shlex.quote(str(logs / f"{number}.log"))
    if BACKGROUND.marker in command:
        return [
            f"bash -c {shlex.quote(command)} > {log} 2>&1 & DEV=$!",
            f"wait_for_line {log} {shlex.quote(str(BACKGROUND.ready))} $DEV",
        ]
    if any(bounded.marker in command for bounded in BOUNDED):
        return [
            f"bash -c {shlex.quote(command)} > {log} 2>&1 & LONG=$!",
            f"keeps_running $LONG {log}",
            'kill -INT -- "-$LONG"; wait "$LONG" || true',
        ]
    if TEST_COMMAND in command:
        return [f"PYTEST_ADDOPTS='--collect-only -q' bash -c {shlex.quote(command)}"]
    return [command]


def copy_project(target: Path) -> None:
    """The project's files as a fresh clone would have them (tracked and new, not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = PROJECT_ROOT / name.decode()
        if source.is_file():
            (target / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name.decode())


def fresh_shell_environment() -> dict[str, str]:
    """A newcomer's environment: no servers named, no virtualenv active."""
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if ".venv" not in p]
    keep = ("HOME", "LANG", "TERM", "USER")
    env = {n: v for n, v in os.environ.items() if n in keep or n.startswith("PIP_")}
    return {**env, "PATH": os.pathsep.join(path), "PYTHONUNBUFFERED": "1"}


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_the_readme_commands_parse_into_the_sections_a_newcomer_follows() -> None:
    commands = readme_commands(README.read_text())
    assert BACKGROUND.marker in commands[0]  # "Run it" comes first
    assert TEST_COMMAND in commands[1]  # then "Test it"
    assert all("<" not in c and "..." not in c for c in commands), "placeholders left"
    bare = [c for c in commands if re.match(r"^\s*tally\b", c)]
    assert not bare, f"`tally` is not on PATH after the first command: {bare}"


@pytest.mark.timeout(1200)
def test_every_readme_command_works_pasted_in_order_into_a_fresh_shell(tmp_path: Path) -> None:
    if port_in_use(PORT):
        pytest.skip(f"port {PORT} is taken here, and the README's commands use it")
    clone, logs = tmp_path / "tally", tmp_path / "logs"
    clone.mkdir()
    logs.mkdir()
    copy_project(clone)
    script = shell_script(readme_commands(README.read_text()), logs)
    (tmp_path / "readme.sh").write_text(script)
    # A fresh terminal's shell takes Ctrl-C; this test's process may have been started with
    # SIGINT ignored (a background job of a non-interactive shell is), which bash would pass
    # on to every command and which no trap can undo: GNU env resets it first.
    command = ["env", "--default-signal=INT", "bash", str(tmp_path / "readme.sh")]
    shell = start("readme", command, cwd=clone, env=fresh_shell_environment(), log=logs / "all.log")
    try:
        shell.popen.wait(timeout=1100)
    finally:
        kill_what_it_started(shell, clone)
    output = shell.log_text()
    assert shell.popen.returncode == 0 and "README-DONE" in output, output[-6000:]


def kill_what_it_started(shell: Child, clone: Path) -> None:
    """SIGKILL the script's process tree, then any PostgreSQL it left detached in the copy.

    `pg_ctl` detaches the postmaster from the tree; its `postmaster.pid` file records it.
    """
    found = [psutil.Process(shell.pid)] if shell.running else []
    with contextlib.suppress(psutil.NoSuchProcess):
        found += psutil.Process(shell.pid).children(recursive=True)
    for pid_file in clone.rglob("postmaster.pid"):
        with contextlib.suppress(OSError, ValueError, psutil.NoSuchProcess):
            postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
            if "postgres" in postmaster.name():
                found += [postmaster, *postmaster.children(recursive=True)]
    for process in found:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(found, timeout=30)
