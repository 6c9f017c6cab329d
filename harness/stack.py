"""tally's processes and a private Redis, run as real subprocesses a test or benchmark can kill."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx
import redis

from core.migrate import PROJECT_ROOT
from devstack.embedded import redis_server_binary
from devstack.processes import STOP_GRACE_SECONDS, Child, free_port, start, stop_all
from harness.waiting import wait_for

WEB_APP = "web.main:app"  # an app factory, as the Procfile runs it
WORKER_READY = "Worker process is ready for action."
DAEMON_STARTED = "reconcile daemon started"
WEBHOOKS_STARTED = "webhooks daemon started"


@dataclass
class Stack:
    """Starts tally's web, worker and reconcile processes with one environment."""

    env: dict[str, str]
    logs: Path
    grace: float = STOP_GRACE_SECONDS
    children: list[Child] = field(default_factory=list)
    cwd: Path = PROJECT_ROOT  # another folder runs the processes as on a host of their own

    def start(
        self, name: str, command: list[str], env: Mapping[str, str] | None = None, **more: str
    ) -> Child:
        """Start a command in a session of its own, output appended to logs/<name>-<n>.log.

        Its environment is the stack's, then `env`, then `more`.
        """
        log = self.logs / f"{name}-{len(self.children)}.log"
        merged = {**self.env, **(env or {}), **more}
        child = start(name, command, cwd=self.cwd, env=merged, log=log)
        self.children.append(child)
        return child

    def worker(
        self,
        threads: int = 4,
        processes: int = 1,
        name: str = "worker",
        env: Mapping[str, str] | None = None,
        **more: str,
    ) -> Child:
        """`dramatiq worker.main:setup`; it is ready once each process logs WORKER_READY."""
        command = [sys.executable, "-m", "dramatiq", "worker.main:setup"]
        command += ["--processes", str(processes), "--threads", str(threads)]
        command += ["--worker-shutdown-timeout", "5000"]
        return self.start(name, command, env, **more)

    def reconcile(self, env: Mapping[str, str] | None = None, **more: str) -> Child:
        """`python -m reconcile`; it logs DAEMON_STARTED once its scheduler runs."""
        return self.start("reconcile", [sys.executable, "-m", "reconcile"], env, **more)

    def webhooks(self, env: Mapping[str, str] | None = None, **more: str) -> Child:
        """`python -m webhooks`; it logs WEBHOOKS_STARTED once it runs."""
        return self.start("webhooks", [sys.executable, "-m", "webhooks"], env, **more)

    def web(
        self,
        app: str = WEB_APP,
        ready: str = "/healthz",
        factory: bool = True,
        log_level: str | None = "warning",
        name: str = "web",
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        **more: str,
    ) -> str:
        """uvicorn serving `app` on a free port; return its base URL once `ready` answers 200.

        `log_level=None` keeps uvicorn's own level, access log included, as the Procfile runs it;
        `args` are more of uvicorn's options.
        """
        port = free_port()
        command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1"]
        command += ["--port", str(port)]
        command += ["--factory"] if factory else []
        command += ["--log-level", log_level] if log_level else []
        command += args
        child = self.start(name, command, env, **more)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(url + ready) or not child.running, timeout=30)
        assert child.running, child.tail()
        return url

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop every process; print their logs first when the block failed."""
        if exc is not None:
            print(self.report())
        self.stop_all()

    def stop_all(self) -> None:
        """Stop every process this stack started, all at once."""
        stop_all(self.children, self.grace)

    def report(self) -> str:
        """The tail of every process's log, for a failed test's output."""
        return "\n".join(_report(child) for child in self.children)


def _report(child: Child) -> str:
    name = child.log.name if child.log else child.name
    return f"----- {name} (exit {child.popen.returncode}) -----\n{child.tail()}"


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class RedisServer:
    """A private redis-server without persistence, on a fixed port so it can restart in place."""

    directory: Path
    port: int = field(default_factory=free_port)
    child: Child | None = None

    @property
    def url(self) -> str:
        """URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        binary = shutil.which("redis-server") or str(redis_server_binary())
        command = [binary, "--bind", "127.0.0.1", "--port", str(self.port)]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        log = self.directory / "redis.log"
        self.child = start("redis", command, env=os.environ, log=log)
        wait_for(self.answers, timeout=15)

    def crash(self) -> None:
        """SIGKILL the server: every queued message is gone."""
        if self.child is not None:
            self.child.kill()
            self.child = None

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
