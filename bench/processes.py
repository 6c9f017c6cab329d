"""The service processes a benchmark runs (worker, web, reconcile), and their memory."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WORKER_READY = "Worker process is ready for action."


@dataclass
class Service:
    """A child process in its own process group, its output in a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        """Process id of the service's main process."""
        return self.process.pid

    def log_text(self) -> str:
        """Everything the service wrote so far."""
        return self.log.read_text(errors="replace")

    def wait_for_log(self, needle: str, count: int = 1, timeout: float = 60.0) -> None:
        """Wait until `needle` appears `count` times in the log."""
        deadline = time.monotonic() + timeout
        while self.log_text().count(needle) < count:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not get ready; see {self.log}")
            time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the main process, then SIGKILL its group if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait()


def start(name: str, argv: Sequence[str], env: dict[str, str], run_dir: Path) -> Service:
    """Start a service from the project root, in a new session, logging to run_dir."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(argv),
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Service(name, process, log)


@contextlib.contextmanager
def worker(
    env: dict[str, str], run_dir: Path, processes: int = 2, threads: int = 8, name: str = "worker"
) -> Iterator[Service]:
    """Run `dramatiq worker.main:setup` as the Procfile does, ready when every process is."""
    argv = [sys.executable, "-m", "dramatiq", "worker.main:setup"]
    argv += ["--processes", str(processes), "--threads", str(threads)]
    service = start(name, argv, env, run_dir)
    try:
        service.wait_for_log(WORKER_READY, count=processes)
        yield service
    finally:
        service.stop()


@contextlib.contextmanager
def reconcile(env: dict[str, str], run_dir: Path) -> Iterator[Service]:
    """Run the reconcile daemon (`python -m reconcile`)."""
    service = start("reconcile", [sys.executable, "-m", "reconcile"], env, run_dir)
    try:
        service.wait_for_log("reconcile daemon started")
        yield service
    finally:
        service.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def uvicorn(
    app: str, env: dict[str, str], run_dir: Path, ready_path: str, *, factory: bool = False
) -> Iterator[str]:
    """Serve an ASGI app (or app factory) as the Procfile does; yield its base URL."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--factory"] if factory else []
    service = start(f"web-{app.split(':')[0]}", argv, env, run_dir)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(service, base + ready_path)
        yield base
    finally:
        service.stop()


def _wait_http(service: Service, url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and service.process.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{service.name} did not answer {url}; see {service.log}")


def tree_rss(pid: int) -> int:
    """Resident memory, in bytes, of a process and all its descendants."""
    total = 0
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                total += process.memory_info().rss
    return total


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its live descendants."""
    total = 0.0
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                times = process.cpu_times()
                total += times.user + times.system
    return total


def pids_cpu(pids: Sequence[int]) -> float:
    """CPU seconds used so far by the given processes (those still alive)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


class PeakRss:
    """Samples a process tree's resident memory in the background and keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = tree_rss(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, tree_rss(self.pid))
