"""The Procfile runner: parsing, output, and stopping whole process groups."""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.errors import ConfigurationError
from devstack.supervisor import (
    ProcessType,
    Supervisor,
    child_environment,
    parse_procfile,
    shell_command,
)

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")

GRACEFUL_LEADER = """
import signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "child.py"])
signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signal.SIGTERM))
while child.poll() is None:
    time.sleep(0.01)
print("leader stopped", flush=True)
"""

COUNTING_CHILD = """
import signal, time
seen = []
def on_term(signum, frame):
    seen.append(signum)
    print("child got SIGTERM", len(seen), flush=True)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
while not seen:
    time.sleep(0.01)
time.sleep(0.5)
"""


def live_members(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes of a process group, read from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll a condition until it holds or the timeout passes."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def write_procfile(folder: Path, text: str) -> Path:
    """Write a Procfile into a folder and return its path."""
    path = folder / "Procfile"
    path.write_text(text)
    return path


@pytest.fixture
def output() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def make_supervisor(output: io.StringIO) -> Iterator[Callable[..., Supervisor]]:
    made: list[Supervisor] = []

    def make(procfile: Path, grace: float = 5.0) -> Supervisor:
        supervisor = Supervisor(procfile, output=output, grace=grace)
        made.append(supervisor)
        return supervisor

    yield make
    for supervisor in made:
        supervisor.stop()


def test_procfile_lines_become_process_types_in_order() -> None:
    text = "# comment\n\nrelease: alembic upgrade head\nweb:uvicorn app --port $PORT\n"
    assert parse_procfile(text) == [
        ProcessType("release", "alembic upgrade head"),
        ProcessType("web", "uvicorn app --port $PORT"),
    ]


@pytest.mark.parametrize("text", ["web uvicorn app\n", "web:\n", ": cmd\n", "a: x\na: y\n"])
def test_malformed_procfiles_are_refused(text: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_procfile(text)


def test_a_missing_procfile_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        Supervisor(tmp_path / "Procfile")


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("uvicorn web.app:app --port $PORT", "exec uvicorn web.app:app --port $PORT"),
        ("sleep 1 & wait", "sleep 1 & wait"),
        ("a && b", "a && b"),
        ("FOO=1 run", "FOO=1 run"),
        ("if true; then x; fi", "if true; then x; fi"),
        ("echo $(date)", "echo $(date)"),
    ],
)
def test_only_simple_commands_are_exec_ed(command: str, expected: str) -> None:
    assert shell_command(command) == expected


def test_children_find_this_interpreter_first_on_path() -> None:
    env = child_environment({"PATH": "/usr/bin:/bin", "PORT": "8000"})
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert env["PATH"].endswith("/usr/bin:/bin")
    assert env["PORT"] == "8000"


def test_release_runs_alone_and_reports_its_status(
    tmp_path: Path, make_supervisor: Callable[..., Supervisor], output: io.StringIO
) -> None:
    procfile = write_procfile(tmp_path, "release: echo migrating $STEP; exit 3\nweb: sleep 60\n")
    supervisor = make_supervisor(procfile)
    assert supervisor.run_release({**os.environ, "STEP": "one"}) == 3
    assert supervisor.children == []
    assert "release.1 | migrating one" in output.getvalue()


def test_output_lines_are_prefixed_with_the_process_label(
    tmp_path: Path, make_supervisor: Callable[..., Supervisor], output: io.StringIO
) -> None:
    procfile = write_procfile(tmp_path, "web: echo listening on $PORT; sleep 60\n")
    supervisor = make_supervisor(procfile)
    supervisor.start({**os.environ, "PORT": "8123"})
    assert eventually(lambda: "web.1  | listening on 8123" in output.getvalue())


def test_stop_leaves_no_process_of_any_group(
    tmp_path: Path, make_supervisor: Callable[..., Supervisor]
) -> None:
    procfile = write_procfile(
        tmp_path,
        "simple: sleep 61\n"
        "tree: sleep 62 & sleep 63 & wait\n"
        "stubborn: trap '' TERM; sleep 64 & sleep 65\n",
    )
    supervisor = make_supervisor(procfile, grace=1.0)
    supervisor.start(dict(os.environ), {"tree": 2})
    groups = [child.pgid for child in supervisor.children]
    assert len(groups) == 4
    assert eventually(lambda: all(len(live_members(pgid)) >= 1 for pgid in groups))
    assert eventually(lambda: len(live_members(supervisor.children[1].pgid)) == 3)
    supervisor.stop()
    assert [pgid for pgid in groups if live_members(pgid)] == []


def test_a_simple_command_leader_gets_the_first_sigterm_alone(
    tmp_path: Path, make_supervisor: Callable[..., Supervisor], output: io.StringIO
) -> None:
    (tmp_path / "leader.py").write_text(GRACEFUL_LEADER)
    (tmp_path / "child.py").write_text(COUNTING_CHILD)
    supervisor = make_supervisor(write_procfile(tmp_path, "graceful: python leader.py\n"))
    supervisor.start(dict(os.environ))
    assert eventually(lambda: "| ready" in output.getvalue())
    supervisor.stop()
    lines = output.getvalue()
    assert "child got SIGTERM 1" in lines
    assert "leader stopped" in lines
    assert "child got SIGTERM 2" not in lines


def test_a_child_that_exits_stops_the_formation(
    tmp_path: Path, make_supervisor: Callable[..., Supervisor]
) -> None:
    procfile = write_procfile(tmp_path, "quick: sleep 0.2; exit 3\nslow: sleep 60\n")
    supervisor = make_supervisor(procfile)
    supervisor.start(dict(os.environ))
    assert supervisor.wait() == "quick.1 exited with status 3"
    supervisor.stop()
    assert not supervisor.signalled
    assert all(not live_members(child.pgid) for child in supervisor.children)


def test_sigterm_to_the_supervisor_stops_the_formation(
    tmp_path: Path, make_supervisor: Callable[..., Supervisor]
) -> None:
    supervisor = make_supervisor(write_procfile(tmp_path, "slow: sleep 60\n"))
    with supervisor.handle_signals():
        supervisor.start(dict(os.environ))
        os.kill(os.getpid(), signal.SIGTERM)
        assert supervisor.wait() == "received SIGTERM"
        supervisor.stop()
    assert supervisor.signalled
    assert not live_members(supervisor.children[0].pgid)
