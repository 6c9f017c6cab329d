"""Webhook endpoints over the API, delivery from the outbox, signatures, SSRF refusals."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from starlette.testclient import TestClient

from core.database import Database
from core.settings import SandboxOptions, Settings, WebhookOptions
from core.users import NewUser, create_user
from core.webhook_address import resolve
from core.webhook_signing import verify
from harness.waiting import wait_for
from tests.support.inline import RecordedEnqueue, app_settings, process_job
from web.app import create_app
from webhooks import transport
from webhooks.deliverer import Deliverer
from webhooks.fanout import fan_out

OPTIONS = WebhookOptions(allow_private=True, backoff=0.2, backoff_max=0.5, timeout=2)


class Receiver:
    """An HTTP server in a thread that records requests and answers `status`."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.redirect = ""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                owner.requests.append({"headers": dict(self.headers), "body": body})
                self.send_response(307 if owner.redirect else owner.status)
                if owner.redirect:
                    self.send_header("Location", owner.redirect)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.server.shutdown()


@pytest.fixture(scope="module")
def hook_settings(database_url: str, redis_url: str) -> Settings:
    return app_settings(
        database_url, redis_url, sandbox=SandboxOptions(failure_rate=0.1), webhooks=OPTIONS
    )


@pytest.fixture(scope="module")
def shared_client(hook_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(hook_settings, enqueue=RecordedEnqueue())) as test_client:
        yield test_client


@pytest.fixture
def client(shared_client: TestClient, db: Database) -> TestClient:
    return shared_client


def pump(deliverer: Deliverer, done: Callable[[], object], timeout: float = 20) -> None:
    """Run delivery passes until `done()` holds."""

    def step() -> object:
        deliverer.run_pass()
        return done()

    wait_for(step, timeout=timeout)


def auth(user: NewUser) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}"}


def test_a_finished_job_is_delivered_signed_and_can_be_tested_and_replayed(
    client: TestClient, db: Database, hook_settings: Settings, receiver: Receiver
) -> None:
    user = create_user(db.sessions, "hal", credits=100)
    made = client.post("/api/webhooks", json={"url": receiver.url}, headers=auth(user))
    assert made.status_code == 201, made.text
    endpoint, secret = made.json()["id"], made.json()["secret"]
    listed = client.get("/api/webhooks", headers=auth(user)).json()["items"]
    assert [e["id"] for e in listed] == [endpoint]
    assert "secret" not in listed[0]
    job = client.post("/api/jobs", json={"count": 20}, headers=auth(user)).json()
    process_job(db, hook_settings, uuid.UUID(job["id"]))
    fan_out(db.sessions)
    deliverer = Deliverer(db.sessions, hook_settings.secret_box(), OPTIONS)
    try:
        pump(deliverer, lambda: receiver.requests)
        request = receiver.requests[0]
        assert verify(secret, request["headers"]["Tally-Signature"], request["body"])
        event = json.loads(request["body"])
        assert event["type"] == "job.completed"
        assert event["data"]["job"]["id"] == job["id"]
        log = f"/api/webhooks/{endpoint}/deliveries"
        wait_for(
            lambda: client.get(log, headers=auth(user)).json()["items"][0]["status"] == "delivered",
            timeout=10,
        )
        first = client.get(log, headers=auth(user)).json()["items"][0]
        assert client.post(f"/api/webhooks/{endpoint}/test", headers=auth(user)).status_code == 202
        replayed = client.post(f"{log}/{first['id']}/replay", headers=auth(user))
        assert replayed.status_code == 202
        pump(deliverer, lambda: len(receiver.requests) >= 3)
        types = sorted(json.loads(r["body"])["type"] for r in receiver.requests)
        assert types == ["job.completed", "job.completed", "webhook.test"]
        events = [json.loads(r["body"])["id"] for r in receiver.requests]
        assert events.count(event["id"]) == 2  # the replay keeps the event id
    finally:
        deliverer.close()


def test_a_failing_endpoint_is_retried_with_backoff(
    db: Database, client: TestClient, hook_settings: Settings, receiver: Receiver
) -> None:
    user = create_user(db.sessions, "ivy", credits=100)
    endpoint = client.post("/api/webhooks", json={"url": receiver.url}, headers=auth(user))
    receiver.status = 503
    client.post(f"/api/webhooks/{endpoint.json()['id']}/test", headers=auth(user))
    deliverer = Deliverer(db.sessions, hook_settings.secret_box(), OPTIONS)
    try:
        pump(deliverer, lambda: len(receiver.requests) >= 3)
        receiver.status = 200
        log = f"/api/webhooks/{endpoint.json()['id']}/deliveries"
        wait_for(
            lambda: (
                deliverer.run_pass() is not None
                and client.get(log, headers=auth(user)).json()["items"][0]["status"] == "delivered"
            ),
            timeout=20,
        )
        item = client.get(log, headers=auth(user)).json()["items"][0]
        assert item["attempts"] >= 4
        assert item["response_status"] == 200
    finally:
        deliverer.close()


def test_bad_webhook_urls_are_refused(client: TestClient, db: Database) -> None:
    user = create_user(db.sessions, "jon", credits=0)
    for url in ("ftp://example.com/x", "not a url", "https://" + "a" * 2100 + ".com/"):
        answer = client.post("/api/webhooks", json={"url": url}, headers=auth(user))
        assert answer.status_code == 400, (url, answer.text)
        assert answer.json()["error"]["field"] == "url"
    other = create_user(db.sessions, "kim", credits=0)
    made = client.post(
        "/api/webhooks", json={"url": "http://127.0.0.1:9/x"}, headers=auth(user)
    ).json()
    assert client.delete(f"/api/webhooks/{made['id']}", headers=auth(other)).status_code == 404
    assert (
        client.get(f"/api/webhooks/{made['id']}/deliveries", headers=auth(other)).status_code == 404
    )


def test_private_addresses_are_refused_at_registration_connect_and_redirect(
    database_url: str,
    redis_url: str,
    db: Database,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    strict = app_settings(database_url, redis_url)
    user = create_user(db.sessions, "lee", credits=0)
    with TestClient(create_app(strict, enqueue=RecordedEnqueue())) as strict_client:
        for url in (
            receiver.url,
            "http://localhost/x",
            "http://[::1]/x",
            "http://10.0.0.1/",
            "http://169.254.169.254/latest/meta-data",
        ):
            answer = strict_client.post("/api/webhooks", json={"url": url}, headers=auth(user))
            assert answer.status_code == 400, (url, answer.text)
    production = strict.with_changes(environment="production")
    with TestClient(create_app(production, enqueue=RecordedEnqueue())) as prod_client:
        answer = prod_client.post(
            "/api/webhooks", json={"url": "http://example.com/x"}, headers=auth(user)
        )
        assert answer.status_code == 400
        assert "https" in answer.json()["error"]["message"]
    guarded = transport.Transport(allow_private=False, timeout=2, connections=2)
    refused = guarded.post(receiver.url, {}, b"{}")
    assert refused.status is None and "loopback" in (refused.error or "")
    assert receiver.requests == []
    # A public name that redirects inside: the redirect's connection is refused too.
    real_resolve = resolve

    def public_test(host: str, port: int, allow_private: bool) -> list[str]:
        if host == "public.test":
            return ["127.0.0.1"]
        return real_resolve(host, port, allow_private)

    monkeypatch.setattr("webhooks.transport.resolve", public_test)
    receiver.redirect = "http://localhost:1/internal"
    redirected = guarded.post(f"http://public.test:{receiver.server.server_port}/hook", {}, b"{}")
    assert len(receiver.requests) == 1
    assert redirected.status is None and "loopback" in (redirected.error or "")
    guarded.close()
