"""tally's processes and a private Redis, run as real subprocesses that a test can kill."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from core.migrate import PROJECT_ROOT
from devstack.embedded import redis_server_binary
from tests.support.waiting import wait_for

STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 60


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Process:
    """One subprocess leading its own process group, its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def running(self) -> bool:
        """Whether the group leader has not exited."""
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group (no clean-up of any kind) and reap the leader."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()

    def terminate(self) -> None:
        """Ask the leader to stop cleanly (SIGTERM)."""
        if self.running:
            self.popen.send_signal(signal.SIGTERM)

    def stop(self, deadline: float | None = None) -> None:
        """SIGTERM the leader, wait (until `deadline`) for a clean exit, then SIGKILL the rest."""
        self.terminate()
        deadline = deadline or time.monotonic() + STOP_TIMEOUT
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(max(0.0, deadline - time.monotonic()))
        self.kill()

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of this process's log."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Stack:
    """Starts tally's web, worker and reconcile processes with one environment."""

    env: dict[str, str]
    logs: Path
    processes: list[Process] = field(default_factory=list)

    def start(self, name: str, command: list[str], **env: str) -> Process:
        """Start a command in a session of its own, output appended to logs/<name>-<n>.log."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}-{len(self.processes)}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                command,
                cwd=PROJECT_ROOT,
                env={**self.env, **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def worker(self, threads: int = 4, **env: str) -> Process:
        """`dramatiq worker.actors` with one worker process."""
        command = [sys.executable, "-m", "dramatiq", "worker.actors", "--processes", "1"]
        command += ["--threads", str(threads), "--worker-shutdown-timeout", "5000"]
        return self.start("worker", command, **env)

    def reconcile(self, **env: str) -> Process:
        """`python -m reconcile`."""
        return self.start("reconcile", [sys.executable, "-m", "reconcile"], **env)

    def web(self, **env: str) -> str:
        """`uvicorn web.app:app` on a free port; return its base URL once it answers."""
        port = free_port()
        command = [sys.executable, "-m", "uvicorn", "web.app:app", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--log-level", "warning"]
        process = self.start("web", command, **env)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(url) or not process.running, timeout=30)
        assert process.running, process.tail()
        return url

    def stop_all(self) -> None:
        """Stop every process this stack started, all at once."""
        for process in self.processes:
            process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in self.processes:
            process.stop(deadline)

    def report(self) -> str:
        """The tail of every process's log, for a failed test's output."""
        return "\n".join(
            f"----- {p.log.name} (exit {p.popen.returncode}) -----\n{p.tail()}"
            for p in self.processes
        )


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class RedisServer:
    """A private redis-server without persistence, on a fixed port so it can restart in place."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        self.directory.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server") or str(redis_server_binary())
        command = [binary, "--bind", "127.0.0.1", "--port", str(self.port)]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for(self.answers, timeout=15)

    def crash(self) -> None:
        """SIGKILL the server: every queued message is gone."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def flushall(self) -> None:
        """Delete every key of every database."""
        with self.client() as client:
            client.flushall()

    def client(self) -> redis.Redis[bytes]:
        """A client on database 0."""
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def answers(self) -> bool:
        """Whether the server answers PING."""
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False
