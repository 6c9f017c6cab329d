"""The `tally` client commands against a running server and a real worker."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from cli.main import main
from core.database import Database
from core.settings import Settings
from core.users import NewUser, create_user
from harness.outbox import apply_pending
from tests.integration.conftest import WorkerRunner
from tests.support.live_server import RunningServer, serve
from web.app import create_app

CREDITS = 1000


@pytest.fixture
def server(settings: Settings, db: Database) -> Iterator[RunningServer]:
    with serve(create_app(settings)) as running:
        yield running


@pytest.fixture
def user(db: Database, monkeypatch: pytest.MonkeyPatch) -> NewUser:
    created = create_user(db.sessions, "cli", credits=CREDITS)
    monkeypatch.setenv("TALLY_TOKEN", created.token)
    return created


@pytest.fixture
def applier(db: Database) -> Iterator[None]:
    """What the reconcile daemon does: apply the outbox every few tenths of a second."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.2):
            apply_pending(db.sessions)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()


def test_submit_wait_follows_the_job_and_prints_counters_and_stats(
    server: RunningServer,
    user: NewUser,
    run_worker: WorkerRunner,
    applier: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with run_worker():
        status = main(["submit", "120", "--wait", "--url", server.url])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "completed" in out and "100%" in out
    assert "requested" in out and "business_centers" in out
    rows = {cells[0]: cells[1] for cells in _rows(out) if len(cells) == 2}
    assert rows["requested"] == "120"
    assert int(rows["successful"]) == 120 and rows["failures"] == "0"
    assert rows["credits"] == str(CREDITS - 120)


def test_stats_jobs_and_accounts_print_tables(
    server: RunningServer,
    db: Database,
    user: NewUser,
    run_worker: WorkerRunner,
    applier: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with run_worker():
        assert main(["submit", "30", "--wait", "--url", server.url]) == 0
    capsys.readouterr()
    assert main(["stats", "--url", server.url]) == 0
    rows = {cells[0]: cells[1] for cells in _rows(capsys.readouterr().out) if len(cells) == 2}
    assert rows["business_centers"] == "30"
    assert main(["jobs", "--url", server.url]) == 0
    out = capsys.readouterr().out
    assert "Jobs: 1 of 1" in out and "more:" not in out
    assert main(["accounts", "--url", server.url, "--limit", "5"]) == 0
    out = capsys.readouterr().out
    assert "Vault: 5 of 30" in out and out.count("sbx_") == 5
    assert "more: tally accounts --limit 5 --cursor " in out


def test_json_output_is_the_api_answer_for_scripts(
    server: RunningServer,
    user: NewUser,
    run_worker: WorkerRunner,
    applier: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with run_worker():
        assert main(["submit", "12", "--wait", "--json", "--url", server.url]) == 0
    outcome = json.loads(capsys.readouterr().out)
    assert outcome["job"]["status"] == "completed" and outcome["job"]["successful"] == 12
    assert outcome["stats"]["requested"] == 12 and outcome["credits"]["balance"] == CREDITS - 12
    assert main(["jobs", "--json", "--url", server.url]) == 0
    page = json.loads(capsys.readouterr().out)
    assert page["total"] == 1 and page["items"][0]["id"] == outcome["job"]["id"]
    assert main(["accounts", "--json", "--limit", "3", "--url", server.url]) == 0
    accounts = json.loads(capsys.readouterr().out)
    assert accounts["total"] == 12 and len(accounts["items"]) == 3
    assert all("secret" not in a for a in accounts["items"])
    cursor = accounts["next_cursor"]
    assert (
        main(["accounts", "--json", "--limit", "3", "--cursor", cursor, "--url", server.url]) == 0
    )
    second = json.loads(capsys.readouterr().out)["items"]
    assert len(second) == 3 and not {a["id"] for a in second} & {a["id"] for a in accounts["items"]}
    assert main(["accounts", "--json", "--limit", "5", "--all", "--url", server.url]) == 0
    every = json.loads(capsys.readouterr().out)
    assert len({a["id"] for a in every["items"]}) == 12 and every["next"] is None


def test_client_errors_are_printed_not_raised(
    server: RunningServer,
    user: NewUser,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["submit", str(CREDITS + 1), "--url", server.url]) == 1
    assert "needs 1001 credits" in capsys.readouterr().err
    assert main(["submit", "0", "--url", server.url]) == 1
    assert "count must be between" in capsys.readouterr().err
    monkeypatch.setenv("TALLY_TOKEN", user.token + "x")
    assert main(["stats", "--url", server.url]) == 1
    assert "valid bearer token is required" in capsys.readouterr().err
    monkeypatch.delenv("TALLY_TOKEN")
    assert main(["jobs", "--url", server.url]) == 1
    assert "TALLY_TOKEN" in capsys.readouterr().err


def _rows(out: str) -> Iterator[list[str]]:
    """The cells of every table row rich printed (box-drawing borders)."""
    for line in out.splitlines():
        if line.startswith("│"):
            yield [cell.strip() for cell in line.strip("│").split("│")]


def test_cancel_stops_a_job_and_a_finished_one_is_refused(
    server: RunningServer,
    user: NewUser,
    run_worker: WorkerRunner,
    applier: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["submit", "40", "--json", "--url", server.url]) == 0
    queued = json.loads(capsys.readouterr().out)
    assert main(["cancel", queued["id"], "--wait", "--json", "--url", server.url]) == 0
    cancelled = json.loads(capsys.readouterr().out)
    assert (cancelled["status"], cancelled["cancelled"]) == ("cancelled", 40)
    with run_worker():
        assert main(["submit", "5", "--wait", "--json", "--url", server.url]) == 0
    finished = json.loads(capsys.readouterr().out)["job"]
    assert main(["cancel", finished["id"], "--url", server.url]) == 1
    assert "already completed" in capsys.readouterr().err
    assert main(["cancel", queued["id"], "--url", server.url]) == 0
    assert "cancelled" in capsys.readouterr().out
