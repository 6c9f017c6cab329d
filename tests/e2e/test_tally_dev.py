"""The README's first command, as a user runs it: `tally dev`, a job over HTTP, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.migrate import PROJECT_ROOT
from devstack.processes import free_port, start
from harness.waiting import wait_for

TALLY = str(Path(sys.executable).with_name("tally"))
STARTUP_TIMEOUT = 90.0


def processes_mentioning(text: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose command line contains `text`."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if text in " ".join(process.info["cmdline"] or []):
                found.append(process)
        except psutil.Error:
            continue
    return found


class DevRun:
    """A running `tally dev` and what it printed."""

    def __init__(self, data_dir: Path, env: dict[str, str], log: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [TALLY, "dev", "--data-dir", str(data_dir), "--port", str(self.port)]
        self.child = start("tally-dev", command, cwd=PROJECT_ROOT, env=env, log=log)
        self.process = self.child.popen

    def output(self) -> str:
        return self.child.log_text()

    def wait_ready(self) -> str:
        """Wait for the banner and return the demo token it printed."""

        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"tally dev exited early:\n{self.output()}")
            return "Ctrl-C" in self.output()

        wait_for(ready, STARTUP_TIMEOUT, interval=0.25)
        return (self.data_dir / "demo-token").read_text().strip()

    def process_tree(self) -> list[psutil.Process]:
        """Every process this run started: its descendants and the detached postmaster."""
        tree: list[psutil.Process] = psutil.Process(self.process.pid).children(recursive=True)
        postmaster = self.data_dir / "postgres" / "postmaster.pid"
        if postmaster.exists():
            tree.append(psutil.Process(int(postmaster.read_text().split()[0])))
        return tree

    def interrupt(self) -> int:
        """Send Ctrl-C and return the exit status."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        """SIGKILL its process group."""
        self.child.kill()


def still_alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            continue
    return alive


def run_one_job(url: str, token: str) -> dict[str, int]:
    """Submit 50 accounts over HTTP, poll to completion, return the stats card."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        before = client.get("/api/stats").json()
        answer = client.post("/api/jobs", content=b'{"count": 50}')
        assert answer.status_code == 202, answer.text
        location = answer.headers["location"]

        def finished() -> dict[str, object] | None:
            job = client.get(location).json()
            return job if job["status"] in ("completed", "failed") else None

        job = wait_for(finished, 60, interval=0.2)
        assert job["status"] == "completed" and job["successful"] == 50

        def stats_updated() -> dict[str, int] | None:
            stats = client.get("/api/stats").json()
            return stats if stats["requested"] == before["requested"] + 50 else None

        stats = wait_for(stats_updated, 10, interval=0.2)
        assert stats["successful"] == before["successful"] + 50
        assert stats["business_centers"] == before["business_centers"] + 50
        return stats


def metric_families(url: str) -> set[str]:
    """The names of the metric families the web's /metrics serves."""
    answer = httpx.get(f"{url}/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    return {family.name for family in text_string_to_metric_families(answer.text)}


@pytest.fixture
def dev_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL"))}
    env.pop("TALLY_FERNET_KEY", None)
    return env


@pytest.fixture
def dev_run_factory(tmp_path: Path) -> Iterator[list[DevRun]]:
    runs: list[DevRun] = []
    yield runs
    for run in runs:
        run.kill()


def test_embedded_default_serves_a_job_and_stops_cleanly(
    tmp_path: Path, dev_env: dict[str, str], dev_run_factory: list[DevRun]
) -> None:
    data_dir = tmp_path / "tally-data"
    first = DevRun(data_dir, dev_env, tmp_path / "first.log")
    dev_run_factory.append(first)
    token = first.wait_ready()
    assert token in first.output() and first.url in first.output()
    assert f"{first.url}/#token={token}" in first.output()  # opens the dashboard signed in
    stats = run_one_job(first.url, token)
    assert stats["requested"] == 50
    families = metric_families(first.url)  # every process's, as production serves them
    assert {"tally_provider_call_seconds", "dramatiq_messages"} <= families, families
    started = first.process_tree()
    assert len(started) >= 5  # web, worker (master and processes), reconcile, servers
    assert first.interrupt() == 0, first.output()
    assert still_alive(started) == []
    assert processes_mentioning(str(data_dir)) == []

    second = DevRun(data_dir, dev_env, tmp_path / "second.log")
    dev_run_factory.append(second)
    assert second.wait_ready() == token
    again = run_one_job(second.url, token)
    assert again["requested"] == 100
    assert second.interrupt() == 0, second.output()
    assert processes_mentioning(str(data_dir)) == []


def test_procfile_runs_against_given_servers(
    tmp_path: Path, process_env: dict[str, str], dev_run_factory: list[DevRun], db: object
) -> None:
    run = DevRun(tmp_path / "data", process_env, tmp_path / "dev.log")
    dev_run_factory.append(run)
    token = run.wait_ready()
    run_one_job(run.url, token)
    started = run.process_tree()
    output = run.output()
    for name in ("web.1", "worker.1", "reconcile.1"):
        assert name in output
    assert "postgres" not in " ".join(p.name() for p in processes_mentioning(str(tmp_path)))
    assert run.interrupt() == 0, output
    assert still_alive(started) == []


def run_tally(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a `tally` command to its end, as typed in a shell in `cwd`."""
    return subprocess.run(
        [TALLY, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_folder_runs_one_stack_that_commands_find_and_whose_servers_are_watched(
    tmp_path: Path, dev_env: dict[str, str], dev_run_factory: list[DevRun]
) -> None:
    data_dir = tmp_path / ".tally"
    first = DevRun(data_dir, dev_env, tmp_path / "first.log")
    dev_run_factory.append(first)
    token = first.wait_ready()
    assert "export DATABASE_URL=" in first.output()  # to reach it from another folder

    port = str(free_port())
    second = run_tally(["dev", "--data-dir", str(data_dir), "--port", port], tmp_path, dev_env)
    assert second.returncode != 0
    assert f"another `tally dev` (pid {first.process.pid})" in second.stderr
    assert httpx.get(f"{first.url}/readyz", timeout=10).status_code == 200  # left alone
    run_one_job(first.url, token)

    # Operator and client commands typed in the folder find its servers and demo token.
    created = run_tally(["user", "create", "--name", "ops", "--credits", "5"], tmp_path, dev_env)
    assert created.returncode == 0 and "user_id:" in created.stdout, created.stderr
    stats = run_tally(["stats", "--json"], tmp_path, dev_env)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["stats"]["requested"] == 50

    # A server that dies stops the run, which says so.
    found = re.search(r"private Redis \(pid (\d+)\)", first.output())
    assert found is not None, first.output()
    os.kill(int(found.group(1)), signal.SIGKILL)
    assert first.process.wait(timeout=60) != 0
    assert f"Redis (pid {found.group(1)}) stopped unexpectedly" in first.output()
    wait_for(lambda: processes_mentioning(str(data_dir)) == [], timeout=30)
