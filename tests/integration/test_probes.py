"""/metrics and /readyz need the scrape token; /readyz fails on a stuck outbox or no daemon."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from core.database import Database
from core.jobs import JobRequest, submit
from core.settings import Settings
from core.users import create_user
from harness.outbox import apply_pending
from reconcile.heartbeat import DaemonIdentity, beat
from tests.support.inline import RecordedEnqueue, process_job
from web.app import create_app

TOKEN = "a-scrape-token-for-tests"
PROBES = ("/metrics", "/readyz")
Clients = Callable[..., AbstractContextManager[TestClient]]


@pytest.fixture
def clients(settings: Settings, db: Database) -> Clients:
    """A test client on an app whose settings differ from the test's by `changes`."""

    @contextmanager
    def client(**changes: object) -> Iterator[TestClient]:
        app = create_app(settings.with_changes(**changes), enqueue=RecordedEnqueue())
        with TestClient(app) as test_client:
            yield test_client

    return client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("path", PROBES)
def test_a_probe_refuses_a_caller_without_the_scrape_token(
    clients: Clients, db: Database, path: str
) -> None:
    beat(db.sessions, DaemonIdentity(), is_leader=True)
    user = create_user(db.sessions, "member", credits=1)
    with clients(metrics_token=TOKEN) as client:
        for headers in ({}, bearer("wrong"), bearer(user.token), {"Authorization": TOKEN}):
            refused = client.get(path, headers=headers)
            assert refused.status_code == 401, headers
            assert refused.json()["error"]["code"] == "unauthorized"
            assert refused.headers["www-authenticate"] == "Bearer"
        assert client.get(path, headers=bearer(TOKEN)).status_code == 200


@pytest.mark.parametrize("path", PROBES)
def test_without_a_token_the_probes_are_closed_outside_development(
    clients: Clients, path: str
) -> None:
    with clients(environment="production") as client:
        assert client.get(path).status_code == 401


def test_the_daemon_host_and_pid_are_shown_to_the_token_only(
    clients: Clients, db: Database
) -> None:
    identity = DaemonIdentity()
    beat(db.sessions, identity, is_leader=True)
    with clients() as client:
        open_daemon = client.get("/readyz").json()["reconcile"]
    with clients(metrics_token=TOKEN) as client:
        full_daemon = client.get("/readyz", headers=bearer(TOKEN)).json()["reconcile"]
        assert client.get("/healthz").json() == {"status": "ok"}
    assert "hostname" not in open_daemon and "pid" not in open_daemon
    assert (full_daemon["hostname"], full_daemon["pid"]) == (identity.hostname, identity.pid)
    assert {k: v for k, v in full_daemon.items() if k not in ("hostname", "pid")}.keys() == (
        open_daemon.keys()
    )


def test_readyz_fails_while_the_oldest_outbox_row_waits_too_long(
    clients: Clients, db: Database, settings: Settings
) -> None:
    user = create_user(db.sessions, "stuck", credits=100)
    job = submit(db.sessions, settings, JobRequest(user.user_id, 3, "sandbox")).job
    process_job(db, settings, job.id)
    beat(db.sessions, DaemonIdentity(), is_leader=True)
    with clients(ready_max_outbox_age=30.0) as client:
        assert client.get("/readyz").status_code == 200  # pending, but young
        with db.engine.begin() as connection:
            connection.execute(text("UPDATE outbox SET created_at = now() - interval '45 seconds'"))
        stuck = client.get("/readyz")
        assert stuck.status_code == 503
        assert stuck.json()["status"] == "unavailable"
        assert "oldest unapplied outbox row" in stuck.json()["reason"]
        assert apply_pending(db.sessions) == 1
        assert client.get("/readyz").status_code == 200


def test_readyz_fails_when_no_daemon_beats(
    clients: Clients, db: Database, settings: Settings
) -> None:
    with clients() as client:
        assert client.get("/readyz").json() == {
            "status": "unavailable",
            "reason": "no reconcile daemon has a heartbeat",
        }
        beat(db.sessions, DaemonIdentity(), is_leader=False)
        assert client.get("/readyz").status_code == 200
        silent = 10 * settings.intervals.heartbeat
        with db.engine.begin() as connection:
            connection.execute(
                text(
                    "UPDATE reconcile_heartbeats SET last_seen = now() - make_interval(secs => :s)"
                ),
                {"s": silent},
            )
        gone = client.get("/readyz")
        assert gone.status_code == 503
        assert "newest reconcile heartbeat" in gone.json()["reason"]
