"""A job's accounts by cursor, and exports: secrets on explicit intent, resumable, recorded."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from core.database import Database
from core.providers.base import item_key
from core.providers.sandbox import SandboxProvider
from core.settings import SandboxOptions, Settings
from core.users import NewUser, create_user
from tests.support.inline import RecordedEnqueue, app_settings, process_job
from web.app import create_app

OPTIONS = SandboxOptions(failure_rate=0.2)


@pytest.fixture(scope="module")
def lossy_settings(database_url: str, redis_url: str) -> Settings:
    return app_settings(database_url, redis_url, sandbox=OPTIONS, slice_size=50)


@pytest.fixture(scope="module")
def shared_client(lossy_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(lossy_settings, enqueue=RecordedEnqueue())) as test_client:
        yield test_client


@pytest.fixture
def client(shared_client: TestClient, db: Database) -> TestClient:
    return shared_client


def auth(user: NewUser) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}"}


def run_job(client: TestClient, db: Database, settings: Settings, user: NewUser, n: int) -> str:
    answer = client.post("/api/jobs", json={"count": n}, headers=auth(user))
    assert answer.status_code == 202, answer.text
    job_id: str = answer.json()["id"]
    process_job(db, settings, uuid.UUID(job_id))
    return job_id


def expected_accounts(job_id: str, indices: list[int]) -> dict[int, Any]:
    provider = SandboxProvider(OPTIONS)
    return {i: asyncio.run(provider.create_account(item_key(job_id, i))) for i in indices}


def vault_indices(db: Database, job_id: str) -> list[int]:
    with db.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT item_index FROM user_accounts WHERE job_id = :j ORDER BY item_index"),
            {"j": job_id},
        )
        return [r.item_index for r in rows]


def test_job_accounts_pages_by_cursor_without_secrets(
    client: TestClient, db: Database, lossy_settings: Settings
) -> None:
    user = create_user(db.sessions, "ada", credits=1000)
    job_id = run_job(client, db, lossy_settings, user, 120)
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params = {"limit": "25", **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/api/job/{job_id}/accounts", params=params, headers=auth(user))
        assert page.status_code == 200, page.text
        body = page.json()
        assert all("secret" not in item for item in body["items"])
        seen += [item["item_index"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == vault_indices(db, job_id)
    assert 0 < len(seen) < 120


def test_export_with_secrets_decrypts_to_what_the_provider_returned(
    client: TestClient, db: Database, lossy_settings: Settings
) -> None:
    user = create_user(db.sessions, "bea", credits=1000)
    job_id = run_job(client, db, lossy_settings, user, 150)
    answer = client.post(
        f"/api/job/{job_id}/export",
        json={"format": "ndjson", "include": "secrets"},
        headers=auth(user),
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    rows = [json.loads(line) for line in answer.text.splitlines()]
    indices = [row["item_index"] for row in rows]
    assert indices == vault_indices(db, job_id)
    expected = expected_accounts(job_id, indices)
    assert {r["item_index"]: r["secret"] for r in rows} == {
        i: a.secret for i, a in expected.items()
    }
    listed = client.get("/api/exports", headers=auth(user)).json()["items"]
    assert listed[0]["status"] == "done"
    assert listed[0]["accounts"] == len(rows)
    assert listed[0]["secrets"] is True


def test_csv_without_secrets_has_no_secret_column(
    client: TestClient, db: Database, lossy_settings: Settings
) -> None:
    user = create_user(db.sessions, "cy", credits=1000)
    job_id = run_job(client, db, lossy_settings, user, 40)
    answer = client.post("/api/exports", json={"format": "csv"}, headers=auth(user))
    assert answer.status_code == 200, answer.text
    table = list(csv.DictReader(io.StringIO(answer.text)))
    assert "secret" not in table[0]
    assert sorted(int(r["item_index"]) for r in table) == vault_indices(db, job_id)
    assert client.get("/api/exports", headers=auth(user)).json()["items"][0]["secrets"] is False


def test_a_cut_export_resumes_to_exactly_the_whole_set(
    client: TestClient, db: Database, lossy_settings: Settings
) -> None:
    user = create_user(db.sessions, "dee", credits=2000)
    run_job(client, db, lossy_settings, user, 300)
    run_job(client, db, lossy_settings, user, 200)
    whole = client.post("/api/exports", json={"format": "ndjson"}, headers=auth(user))
    ids = [json.loads(line)["id"] for line in whole.text.splitlines()]
    received: list[dict[str, Any]] = []
    with client.stream(
        "POST", "/api/exports", json={"format": "ndjson"}, headers=auth(user)
    ) as cut:
        for line in cut.iter_lines():
            received.append(json.loads(line))
            if len(received) >= len(ids) * 40 // 100:
                break
    rest = client.post(
        "/api/exports",
        json={"format": "ndjson", "cursor": received[-1]["cursor"]},
        headers=auth(user),
    )
    assert rest.status_code == 200, rest.text
    resumed = [row["id"] for row in received] + [
        json.loads(line)["id"] for line in rest.text.splitlines()
    ]
    assert resumed == ids
    assert len(set(ids)) == len(ids) == len(vault_indices_of_user(db, user))
    assert client.get("/api/exports", headers=auth(user)).json()["items"][0]["resumed"] is True


def vault_indices_of_user(db: Database, user: NewUser) -> list[str]:
    with db.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id FROM user_accounts WHERE user_id = :u AND deleted_at IS NULL"),
            {"u": user.user_id},
        )
        return [str(r.id) for r in rows]


def test_bad_cursors_and_other_users_jobs_are_refused(
    client: TestClient, db: Database, lossy_settings: Settings
) -> None:
    owner = create_user(db.sessions, "eve", credits=1000)
    other = create_user(db.sessions, "fay", credits=1000)
    job_id = run_job(client, db, lossy_settings, owner, 30)
    page = client.get(f"/api/job/{job_id}/accounts", params={"limit": "2"}, headers=auth(owner))
    cursor = page.json()["next_cursor"]
    for bad in ("%%%", "bm90IGpzb24", "x" * 500):
        answer = client.get(
            f"/api/job/{job_id}/accounts", params={"cursor": bad}, headers=auth(owner)
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["field"] == "cursor"
    foreign = client.post(
        "/api/exports", json={"format": "csv", "cursor": cursor}, headers=auth(other)
    )
    assert foreign.status_code == 400
    assert client.get(f"/api/job/{job_id}/accounts", headers=auth(other)).status_code == 404
    assert client.post(f"/api/job/{job_id}/export", json={}, headers=auth(other)).status_code == 404
    bad_format = client.post("/api/exports", json={"format": "xml"}, headers=auth(owner))
    assert bad_format.status_code == 400
    assert client.get("/api/exports", headers=auth(other)).json()["items"] == []


def test_one_export_at_a_time_per_user(
    client: TestClient, db: Database, lossy_settings: Settings
) -> None:
    user = create_user(db.sessions, "gil", credits=1000)
    run_job(client, db, lossy_settings, user, 10)
    with db.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO exports (user_id, format, secrets) VALUES (:u, 'csv', false)"),
            {"u": user.user_id},
        )
    busy = client.post("/api/exports", json={"format": "csv"}, headers=auth(user))
    assert busy.status_code == 409, busy.text
    with db.engine.begin() as connection:
        connection.execute(
            text("UPDATE exports SET seen_at = now() - interval '5 minutes' WHERE user_id = :u"),
            {"u": user.user_id},
        )
    taken_over = client.post("/api/exports", json={"format": "csv"}, headers=auth(user))
    assert taken_over.status_code == 200, taken_over.text
    statuses = [e["status"] for e in client.get("/api/exports", headers=auth(user)).json()["items"]]
    assert statuses == ["done", "interrupted"]
