"""The service processes a benchmark runs (worker, web, reconcile), and their memory."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil

from devstack.processes import Child
from harness.stack import DAEMON_STARTED, WORKER_READY, Stack

STOP_GRACE_SECONDS = 30.0


@contextlib.contextmanager
def services(env: dict[str, str], run_dir: Path) -> Iterator[Stack]:
    """A stack of service processes logging to run_dir; every one is stopped at the end."""
    stack = Stack(env, run_dir, grace=STOP_GRACE_SECONDS)
    try:
        yield stack
    finally:
        stack.stop_all()


@contextlib.contextmanager
def worker(
    env: dict[str, str], run_dir: Path, processes: int = 2, threads: int = 8, name: str = "worker"
) -> Iterator[Child]:
    """Run `dramatiq worker.main:setup` as the Procfile does, ready when every process is."""
    with services(env, run_dir) as stack:
        child = stack.worker(threads=threads, processes=processes, name=name)
        child.wait_for_log(WORKER_READY, count=processes)
        yield child


@contextlib.contextmanager
def reconcile(env: dict[str, str], run_dir: Path) -> Iterator[Child]:
    """Run the reconcile daemon (`python -m reconcile`)."""
    with services(env, run_dir) as stack:
        child = stack.reconcile()
        child.wait_for_log(DAEMON_STARTED)
        yield child


@contextlib.contextmanager
def uvicorn(
    app: str, env: dict[str, str], run_dir: Path, ready_path: str, *, factory: bool = False
) -> Iterator[str]:
    """Serve an ASGI app (or app factory) as the Procfile does; yield its base URL."""
    with services(env, run_dir) as stack:
        name = f"web-{app.split(':')[0]}"
        yield stack.web(app, ready_path, factory=factory, log_level=None, name=name)


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
