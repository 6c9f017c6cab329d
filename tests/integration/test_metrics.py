"""/metrics: database figures at scrape time, and the worker's and daemon's measurements."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from core.database import Database
from core.jobs import JobRequest, submit
from core.settings import SandboxOptions, Settings
from core.users import create_user
from harness.outbox import apply_pending
from harness.stack import Stack
from harness.waiting import wait_for
from tests.support.inline import RecordedEnqueue, process_job
from web.app import create_app

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
PROMTOOL = shutil.which("promtool")


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, enqueue=RecordedEnqueue())) as test_client:
        yield test_client


def scrape(text: str) -> Samples:
    """Every sample of an exposition text, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape_when(
    client: TestClient, key: tuple[str, tuple[tuple[str, str], ...]], value: float
) -> Samples:
    """The first scrape in which one sample has the value expected."""

    def scraped() -> Samples | None:
        samples = scrape(client.get("/metrics").text)
        return samples if samples.get(key) == value else None

    return wait_for(scraped, timeout=15)


def local(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_read_jobs_items_and_outbox_from_the_database(
    client: TestClient, db: Database, settings: Settings
) -> None:
    user = create_user(db.sessions, "metrics", credits=1000)
    flaky = settings.with_changes(sandbox=SandboxOptions(failure_rate=0.3))
    calls_before = local("tally_provider_call_seconds_count", provider="sandbox", outcome="ok")
    batches_before = local("tally_apply_batch_rows_count")
    done = submit(db.sessions, flaky, JobRequest(user.user_id, 120, "sandbox")).job
    process_job(db, flaky, done.id)
    submit(db.sessions, flaky, JobRequest(user.user_id, 5, "sandbox"))  # queued: no turn runs

    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    # Finished jobs come from PostgreSQL's table statistics, which a backend flushes when
    # it has been idle a while or when it ends: closing the pool's connections ends them.
    db.engine.dispose()
    before = scrape_when(client, ("tally_jobs", (("status", "completed"),)), 1)
    assert before[("tally_jobs", (("status", "queued"),))] == 1
    assert before[("tally_jobs", (("status", "failed"),))] == 0
    assert before[("tally_items_created_total", ())] == 0  # the job's stats are not applied
    assert before[("tally_outbox_backlog", ())] == 1
    assert before[("tally_outbox_oldest_pending_seconds", ())] > 0

    apply_pending(db.sessions)
    db.engine.dispose()
    created = scrape(client.get("/metrics").text)[("tally_items_created_total", ())]
    after = scrape_when(client, ("tally_vault_accounts", ()), created)
    failed = after[("tally_items_failed_total", ())]
    assert created + failed == 120 and created > 0 and failed > 0
    assert after[("tally_outbox_backlog", ())] == 0
    assert after[("tally_outbox_oldest_pending_seconds", ())] == 0
    assert after[("tally_stats_apply_lag_max_seconds", ())] > 0
    assert (
        0
        < after[("tally_stats_apply_lag_p50_seconds", ())]
        <= after[("tally_stats_apply_lag_max_seconds", ())]
    )
    assert after[("tally_live_listener_connected", ())] == 1
    assert local("tally_provider_call_seconds_count", provider="sandbox", outcome="ok") == (
        calls_before + created
    )
    assert local("tally_apply_batch_rows_count") > batches_before


def promtool_problems(exposition: str) -> str:
    """What `promtool check metrics` says about an exposition; "" when it passes."""
    if PROMTOOL is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    checked = subprocess.run(
        [PROMTOOL, "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if checked.returncode == 0:
        return ""
    return f"exit {checked.returncode}: {checked.stdout}{checked.stderr}"


def test_promtool_accepts_a_real_scrape(
    client: TestClient, db: Database, settings: Settings
) -> None:
    user = create_user(db.sessions, "linted", credits=100)
    job = submit(db.sessions, settings, JobRequest(user.user_id, 10, "sandbox")).job
    process_job(db, settings, job.id)
    apply_pending(db.sessions)
    exposition = client.get("/metrics").text
    assert promtool_problems(exposition) == ""
    assert "tally_stats_apply_lag_p99_seconds" in exposition
    assert promtool_problems(generate_latest(REGISTRY).decode()) == ""  # worker and daemon


def test_metrics_include_the_worker_and_daemon_measurements_on_one_host(
    process_env: dict[str, str], db: Database, redis_client: object, tmp_path: Path
) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    token = {"Authorization": "Bearer scrape-token-of-this-host"}
    env = {**process_env, "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    stack = Stack({**env, "TALLY_METRICS_TOKEN": "scrape-token-of-this-host"}, tmp_path / "logs")
    user = create_user(db.sessions, "scraped", credits=1000)
    try:
        url = stack.web()
        stack.worker(threads=2)
        stack.reconcile(TALLY_APPLY_INTERVAL="0.2")
        headers = {"Authorization": f"Bearer {user.token}"}
        job = httpx.post(f"{url}/api/jobs", json={"count": 80}, headers=headers).json()
        wait_for(lambda: _status(url, job["id"], headers) == "completed", timeout=60)

        def applied() -> str | None:
            exposition = httpx.get(f"{url}/metrics", headers=token).text
            return exposition if scrape(exposition)[("tally_outbox_backlog", ())] == 0 else None

        exposition = wait_for(applied, timeout=30)
        assert httpx.get(f"{url}/metrics", headers=headers).status_code == 401  # a user token
    except BaseException:
        print(stack.report())
        raise
    finally:
        stack.stop_all()
    samples = scrape(exposition)
    calls = samples[
        ("tally_provider_call_seconds_count", (("outcome", "ok"), ("provider", "sandbox")))
    ]
    assert calls == 80
    assert samples[("tally_apply_batch_rows_sum", ())] >= 1
    assert samples[("tally_apply_batch_seconds_count", ())] >= 1
    if PROMTOOL is not None:  # the histograms of every process of the host, as served
        assert promtool_problems(exposition) == ""


def _status(url: str, job_id: str, headers: dict[str, str]) -> str:
    return str(httpx.get(f"{url}/api/job/{job_id}", headers=headers).json()["status"])
