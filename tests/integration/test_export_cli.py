"""`tally accounts export` writes a job's accounts to a file, secrets only with --secrets."""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from cli.main import main
from core.database import Database
from core.jobs import JobRequest, submit
from core.settings import SandboxOptions, Settings
from core.users import NewUser, create_user
from tests.support.inline import process_job
from tests.support.live_server import RunningServer, serve
from web.app import create_app


@pytest.fixture
def lossy(settings: Settings) -> Settings:
    return settings.with_changes(sandbox=SandboxOptions(failure_rate=0.1))


@pytest.fixture
def server(lossy: Settings, db: Database) -> Iterator[RunningServer]:
    with serve(create_app(lossy)) as running:
        yield running


@pytest.fixture
def user(db: Database, monkeypatch: pytest.MonkeyPatch) -> NewUser:
    created = create_user(db.sessions, "cli", credits=1000)
    monkeypatch.setenv("TALLY_TOKEN", created.token)
    return created


def job_of(db: Database, lossy: Settings, user: NewUser, count: int) -> uuid.UUID:
    job = submit(db.sessions, lossy, JobRequest(user.user_id, count, "sandbox")).job
    process_job(db, lossy, job.id)
    return job.id


def vault(db: Database, job_id: uuid.UUID) -> list[int]:
    with db.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT item_index FROM user_accounts WHERE job_id = :j ORDER BY item_index"),
            {"j": job_id},
        )
        return [r.item_index for r in rows]


def test_cli_exports_a_job_to_csv_and_ndjson(
    db: Database, lossy: Settings, server: RunningServer, user: NewUser, tmp_path: Path
) -> None:
    job_id = job_of(db, lossy, user, 130)
    target = tmp_path / "accounts.csv"
    argv = ["accounts", "export", "--url", server.url, "--job", str(job_id)]
    assert main([*argv, "--format", "csv", "-o", str(target)]) == 0
    rows = list(csv.DictReader(target.open()))
    assert [int(r["item_index"]) for r in rows] == vault(db, job_id)
    assert "secret" not in rows[0]
    lines = tmp_path / "accounts.ndjson"
    assert main([*argv, "--format", "ndjson", "--secrets", "-o", str(lines)]) == 0
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    assert [r["item_index"] for r in records] == vault(db, job_id)
    assert all(len(r["secret"]) == 32 for r in records)
