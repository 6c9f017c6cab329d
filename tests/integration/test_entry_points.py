"""Each Procfile process reads its settings at start and refuses bad ones with one line."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

# Refusing must not hang (the measured time is printed; about 2 s for a worker).
EXIT_WITHIN_SECONDS = 15.0

WORKER = [sys.executable, "-m", "dramatiq", "worker.main:setup", "--processes", "1"]
WEB = [sys.executable, "-m", "uvicorn", "--factory", "web.main:app", "--port", "0"]
RECONCILE = [sys.executable, "-m", "reconcile"]


def run_until_exit(command: list[str], env: dict[str, str]) -> tuple[int, str, float]:
    """Run a process to its end; return its exit status, its stderr and how long it took."""
    started = time.monotonic()
    done = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=EXIT_WITHIN_SECONDS,
        stdin=subprocess.DEVNULL,
    )
    return done.returncode, done.stderr + done.stdout, time.monotonic() - started


@pytest.mark.parametrize(
    ("command", "process", "change", "says"),
    [
        (WORKER, "worker", {"TALLY_FERNET_KEY": ""}, "TALLY_FERNET_KEY is not set"),
        (WORKER, "worker", {"TALLY_FERNET_KEY": "nope"}, "not a valid Fernet key"),
        (WORKER, "worker", {"REDIS_URL": ""}, "REDIS_URL (or RABBITMQ_URL) is not set"),
        (WORKER, "worker", {"TALLY_LEASE_SECONDS": "-5"}, "TALLY_LEASE_SECONDS must be"),
        (WEB, "web", {"TALLY_PROVIDER": "htp"}, "TALLY_PROVIDER must be one of sandbox, http"),
        (WEB, "web", {"DATABASE_URL": ""}, "DATABASE_URL is not set"),
        (RECONCILE, "reconcile", {"TALLY_REPAIR_DRIFT": "ture"}, "TALLY_REPAIR_DRIFT must be"),
        (RECONCILE, "reconcile", {"REDIS_URL": ""}, "REDIS_URL (or RABBITMQ_URL) is not set"),
        (WEB, "web", {"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER must be one of"),
        (WORKER, "worker", {"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER must be"),
        (RECONCILE, "reconcile", {"OTEL_TRACES_EXPORTER": "x"}, "OTEL_TRACES_EXPORTER must be"),
    ],
)
def test_a_misconfigured_process_exits_at_once_with_one_clear_line(
    process_env: dict[str, str],
    command: list[str],
    process: str,
    change: dict[str, str],
    says: str,
) -> None:
    status, output, took = run_until_exit(command, {**process_env, **change})
    assert status != 0, output
    lines = [line for line in output.splitlines() if line.startswith(f"tally {process}:")]
    assert len(lines) >= 1 and says in lines[0], output
    assert "Traceback" not in output, output
    assert "ready for action" not in output, output
    print(f"\n[start] {process} refused {sorted(change)} in {took:.2f}s: {lines[0]}")
