"""Child processes in sessions of their own: logs, readiness, stopping and killing groups."""

from __future__ import annotations

import signal
import socket
import sys
from pathlib import Path

import pytest

from devstack.processes import Child, free_port, group_alive, start, stop_all

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")

STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print("stubborn and its child are up", flush=True)
time.sleep(60)
"""


def python(tmp_path: Path, name: str, code: str, log: Path) -> Child:
    """Start `python -c code` as a child logging to `log`."""
    return start(name, [sys.executable, "-c", code], cwd=tmp_path, log=log)


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))


def test_each_child_reads_only_its_own_part_of_a_shared_log(tmp_path: Path) -> None:
    log = tmp_path / "shared.log"
    first = python(tmp_path, "first", "print('ready')", log)
    first.popen.wait()
    second = python(tmp_path, "second", "print('ready'); print('second')", log)
    second.popen.wait()
    assert first.log_text() == "ready\nready\nsecond\n"
    assert second.log_text() == "ready\nsecond\n"
    assert second.tail(1) == "second"


def test_wait_for_log_counts_lines_and_fails_once_the_child_exited(tmp_path: Path) -> None:
    child = python(tmp_path, "counter", "print('up'); print('up')", tmp_path / "c.log")
    child.wait_for_log("up", count=2, timeout=10)
    child.popen.wait()
    with pytest.raises(RuntimeError, match="counter never logged"):
        child.wait_for_log("up", count=3, timeout=10)


def test_stop_kills_a_group_that_ignores_sigterm_after_the_grace(tmp_path: Path) -> None:
    child = python(tmp_path, "stubborn", STUBBORN, tmp_path / "s.log")
    child.wait_for_log("are up", timeout=10)
    assert stop_all([child], grace=0.5) == [child]
    assert child.popen.returncode == -signal.SIGKILL  # SIGTERM was ignored; SIGKILL ended it
    assert not group_alive(child.pgid)


def test_kill_leaves_nothing_of_the_group(tmp_path: Path) -> None:
    child = python(tmp_path, "stubborn", STUBBORN, tmp_path / "k.log")
    child.wait_for_log("are up", timeout=10)
    child.kill()
    assert child.gone() and child.popen.returncode is not None
