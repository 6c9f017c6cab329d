"""Reading reconciliation reports: `tally report`, the admin API and /readyz."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from cli.main import main
from core.database import Database
from core.settings import Settings
from core.users import NewUser, create_user
from reconcile.heartbeat import DaemonIdentity, beat
from reconcile.report import run_report
from tests.support.inline import RecordedEnqueue
from web.app import create_app


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """The environment `tally` reads its database from."""
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("TALLY_ENV", "development")
    monkeypatch.delenv("TALLY_REPAIR_DRIFT", raising=False)


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, enqueue=RecordedEnqueue())) as test_client:
        yield test_client


@pytest.fixture
def admin(db: Database) -> NewUser:
    return create_user(db.sessions, "operator", is_admin=True)


@pytest.fixture
def member(db: Database) -> NewUser:
    return create_user(db.sessions, "member", credits=10)


def auth(user: NewUser) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}"}


def break_balance(db: Database, user: NewUser) -> None:
    with db.engine.begin() as connection:
        connection.execute(
            text("UPDATE user_credits SET balance = balance + 4 WHERE user_id = :u"),
            {"u": user.user_id},
        )


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    status = main(["report", *argv])
    return status, capsys.readouterr().out


def test_cli_runs_shows_and_repairs_reports(
    cli_env: None, db: Database, member: NewUser, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = run_cli(capsys, "--run", "--json")
    clean = json.loads(out)
    assert status == 0 and clean["drift_count"] == 0 and clean["origin"] == "cli"

    break_balance(db, member)
    status, out = run_cli(capsys, "--run", "--json")
    found = json.loads(out)
    assert status == 2 and found["id"] == clean["id"] + 1
    assert [(d["subject_id"], d["field"], d["expected"], d["actual"]) for d in found["drifts"]] == [
        (str(member.user_id), "balance", 10, 14)
    ]

    status, out = run_cli(capsys)
    assert status == 2
    assert f"Reconciliation report #{found['id']}" in out
    assert str(member.user_id) in out and "balance" in out

    status, out = run_cli(capsys, "--repair", "--json")
    repaired = json.loads(out)
    assert status == 0 and repaired["repaired_count"] == 1 and repaired["drifts"][0]["repaired"]

    status, out = run_cli(capsys, "--id", str(found["id"]), "--json")
    assert status == 2 and json.loads(out) == found


def test_cli_explains_when_there_is_no_report(
    cli_env: None, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report"]) == 1
    assert "tally report --run" in capsys.readouterr().err
    assert main(["report", "--id", "12345"]) == 1


def test_admin_api_lists_and_shows_reports(
    client: TestClient, db: Database, admin: NewUser, member: NewUser
) -> None:
    first = run_report(db.sessions, repair=False, origin="cli")
    break_balance(db, member)
    second = run_report(db.sessions, repair=False, origin="cli")

    listed = client.get("/api/admin/reports", headers=auth(admin))
    assert listed.status_code == 200
    body = listed.json()
    assert body["total"] == 2 and [r["id"] for r in body["items"]] == [second.id, first.id]
    assert "drifts" not in body["items"][0] and body["items"][0]["drift_count"] == 1

    shown = client.get(f"/api/admin/reports/{second.id}", headers=auth(admin)).json()
    assert shown["drifts"] == [
        {
            "subject": "user",
            "subject_id": str(member.user_id),
            "field": "balance",
            "expected": 10,
            "actual": 14,
            "repaired": False,
        }
    ]
    latest = client.get("/api/admin/reports/latest", headers=auth(admin)).json()
    assert latest == shown
    assert client.get("/api/admin/reports/999", headers=auth(admin)).status_code == 404
    assert client.get("/api/admin/reports/abc", headers=auth(admin)).status_code == 400


@pytest.mark.parametrize("path", ["/api/admin/reports", "/api/admin/reports/latest"])
def test_admin_api_refuses_everyone_but_admins(
    client: TestClient, member: NewUser, path: str
) -> None:
    assert client.get(path).status_code == 401
    refused = client.get(path, headers=auth(member))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"


def test_readyz_shows_the_newest_daemon_heartbeat(client: TestClient, db: Database) -> None:
    assert client.get("/readyz").status_code == 503  # no daemon beats
    older, newer = DaemonIdentity(), DaemonIdentity()
    beat(db.sessions, older, is_leader=True)
    beat(db.sessions, newer, is_leader=False)
    shown = client.get("/readyz").json()
    assert shown["status"] == "ok"
    assert shown["reconcile"]["daemon_id"] == str(newer.daemon_id)
    assert shown["reconcile"]["is_leader"] is False
    assert shown["reconcile"]["outbox_backlog"] == shown["outbox_backlog"]
