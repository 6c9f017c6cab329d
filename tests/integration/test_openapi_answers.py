"""Every route answers for real, and each answer matches /openapi.json for its status.

The served description is the oracle: an answer's status must be listed for its operation,
and a JSON answer (or each `status` event of a stream) must validate against that status's
schema, with undeclared fields refused and uuid/date-time formats checked.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from sqlalchemy import text
from starlette.testclient import TestClient

from core.database import Database
from core.settings import SandboxOptions, Settings
from core.users import NewUser, create_user
from reconcile.heartbeat import DaemonIdentity, beat
from reconcile.report import run_report
from tests.support.inline import RecordedEnqueue, process_job
from web.app import create_app
from worker import slices

JSON = "application/json"
EVENTS = "text/event-stream"

PUBLIC = {
    ("/", "get"),
    ("/docs", "get"),
    ("/openapi.json", "get"),
    ("/static/{path}", "get"),
    ("/metrics", "get"),
    ("/healthz", "get"),
    ("/readyz", "get"),
}
JOBS = {
    ("/api/jobs", "post"),
    ("/api/jobs", "get"),
    ("/api/job/{job_id}", "get"),
    ("/api/jobs/{job_id}", "get"),
    ("/api/job/{job_id}/events", "get"),
}
CANCEL = {("/api/job/{job_id}/cancel", "post")}
OWN = {
    ("/api/me", "get"),
    ("/api/stats", "get"),
    ("/api/credits", "get"),
    ("/api/accounts", "get"),
    ("/api/accounts/{account_id}", "delete"),
    ("/api/accounts/{account_id}/reveal", "post"),
}
ADMIN = {("/api/admin/reports", "get"), ("/api/admin/reports/{report_id}", "get")}
OPERATOR = {
    ("/api/admin/users", "post"),
    ("/api/admin/users/{user_id}/credits", "post"),
    ("/api/admin/users/{user_id}/tokens", "post"),
    ("/api/tokens", "get"),
    ("/api/tokens/{token_id}", "delete"),
}
DELIVERY = {
    ("/api/job/{job_id}/accounts", "get"),
    ("/api/job/{job_id}/export", "post"),
    ("/api/exports", "post"),
    ("/api/exports", "get"),
    ("/api/job/{job_id}/retry", "post"),
    ("/api/webhooks", "post"),
    ("/api/webhooks", "get"),
    ("/api/webhooks/{endpoint_id}", "delete"),
    ("/api/webhooks/{endpoint_id}/deliveries", "get"),
    ("/api/webhooks/{endpoint_id}/test", "post"),
    ("/api/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay", "post"),
}

FORMATS = FormatChecker()


def _date_time(value: object) -> bool:
    return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None


FORMATS.checks("date-time", raises=ValueError)(_date_time)


def closed(schemas: dict[str, Any]) -> dict[str, Any]:
    """The components with every described object closed to undeclared fields."""
    strict = copy.deepcopy(schemas)
    for schema in strict.values():
        if "properties" in schema:
            schema["additionalProperties"] = False
    return strict


def stream_events(body: str) -> Iterator[tuple[str, str]]:
    """(event, data) for each event of a text/event-stream body that has data."""
    for block in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            yield fields.get("event", "message"), fields["data"]


class Contract:
    """Calls operations through a client and checks each answer against the description."""

    def __init__(self, client: TestClient, spec: dict[str, Any]) -> None:
        self.client = client
        self.spec = spec
        self.components = {"schemas": closed(spec["components"]["schemas"])}
        self.answered: set[tuple[str, str]] = set()

    def call(
        self, method: str, template: str, path: dict[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        """Call one operation (path parameters filled in) and check its answer."""
        answer = self.client.request(method.upper(), template.format(**(path or {})), **kwargs)
        self.check(template, method, answer)
        return answer

    def check(self, template: str, method: str, answer: Any) -> None:
        """Assert the status is described and the body validates against its schema."""
        responses = self.spec["paths"][template][method]["responses"]
        where = (method, template, answer.status_code)
        assert str(answer.status_code) in responses, where
        content = responses[str(answer.status_code)].get("content", {})
        media = answer.headers.get("content-type", "").split(";")[0]
        if media == JSON:
            assert JSON in content, where
            self.validate(answer.json(), content[JSON]["schema"], where)
        elif media == EVENTS:
            assert EVENTS in content, where
            schema = content[EVENTS]["schema"]
            status_data = schema["oneOf"][0]["properties"]["data"]["contentSchema"]
            for event, data in stream_events(answer.text):
                self.validate({"event": event, "data": data}, schema, where)
                if event == "status":
                    self.validate(json.loads(data), status_data, where)
        else:
            assert JSON not in content, where
        self.answered.add((template, method))

    def validate(self, body: Any, schema: dict[str, Any], where: object) -> None:
        """Validate one body against a schema of the description (its refs resolved)."""
        root = {**schema, "components": self.components}
        errors = [
            e.message for e in Draft202012Validator(root, format_checker=FORMATS).iter_errors(body)
        ]
        assert errors == [], (where, body)


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, enqueue=RecordedEnqueue())) as test_client:
        yield test_client


@pytest.fixture
def contract(client: TestClient) -> Contract:
    answer = client.get("/openapi.json")
    assert answer.status_code == 200
    return Contract(client, answer.json())


@pytest.fixture
def user(db: Database) -> NewUser:
    return create_user(db.sessions, "ada", credits=100)


def auth(user: NewUser, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}", **headers}


def finished_job(
    contract: Contract, db: Database, settings: Settings, user: NewUser, count: int = 3
) -> str:
    job = contract.call("post", "/api/jobs", json={"count": count}, headers=auth(user)).json()
    process_job(db, settings, uuid.UUID(job["id"]))
    return str(job["id"])


def test_the_tests_here_answer_every_described_operation(contract: Contract) -> None:
    described = {(p, m) for p, methods in contract.spec["paths"].items() for m in methods}
    assert described == PUBLIC | JOBS | CANCEL | OWN | ADMIN | OPERATOR | DELIVERY


def test_public_routes_answer_as_described(contract: Contract, db: Database) -> None:
    for template in ("/", "/docs", "/openapi.json", "/metrics", "/healthz"):
        assert contract.call("get", template).status_code == 200, template
    assert contract.call("get", "/static/{path}", {"path": "docs.js"}).status_code == 200
    assert contract.call("get", "/static/{path}", {"path": "nothing.js"}).status_code == 404
    assert contract.call("get", "/readyz").status_code == 503  # no daemon beats yet
    beat(db.sessions, DaemonIdentity(), is_leader=True)
    assert contract.call("get", "/readyz").json()["reconcile"]["is_leader"] is True
    assert contract.answered == PUBLIC


def test_probes_behind_the_scrape_token_answer_as_described(
    settings: Settings, db: Database
) -> None:
    beat(db.sessions, DaemonIdentity(), is_leader=True)
    app = create_app(settings.with_changes(metrics_token="scrape"), enqueue=RecordedEnqueue())
    with TestClient(app) as client:
        contract = Contract(client, client.get("/openapi.json").json())
        for template in ("/metrics", "/readyz"):
            assert contract.call("get", template).status_code == 401
            token = {"Authorization": "Bearer scrape"}
            assert contract.call("get", template, headers=token).status_code == 200
        assert contract.call("get", "/healthz").status_code == 200
    assert contract.spec["paths"]["/metrics"]["get"]["security"] == [{"scrape": []}]


def test_job_routes_answer_as_described(
    contract: Contract, db: Database, settings: Settings, user: NewUser
) -> None:
    job_id = finished_job(contract, db, settings, user)
    path = {"job_id": job_id}
    stranger = create_user(db.sessions, "eve", credits=1)
    assert (
        contract.call("post", "/api/jobs", json={"count": 0}, headers=auth(user)).status_code == 400
    )
    assert contract.call("post", "/api/jobs", json={"count": 1}).status_code == 401
    assert (
        contract.call("post", "/api/jobs", json={"count": 5}, headers=auth(stranger)).status_code
        == 402
    )
    assert contract.call("get", "/api/jobs", headers=auth(user)).json()["total"] == 1
    assert (
        contract.call("get", "/api/jobs", params={"limit": 0}, headers=auth(user)).status_code
        == 400
    )
    assert contract.call("get", "/api/jobs").status_code == 401
    for template in ("/api/job/{job_id}", "/api/jobs/{job_id}"):
        answer = contract.call("get", template, path, headers=auth(user))
        assert answer.json()["status"] == "completed"
        revalidate = auth(user, **{"If-None-Match": answer.headers["etag"]})
        assert contract.call("get", template, path, headers=revalidate).status_code == 304
        assert contract.call("get", template, path, headers=auth(stranger)).status_code == 404
        assert (
            contract.call("get", template, {"job_id": "42"}, headers=auth(user)).status_code == 400
        )
    waited = contract.call("get", "/api/job/{job_id}", path, params={"wait": 5}, headers=auth(user))
    assert waited.status_code == 200
    events = contract.call("get", "/api/job/{job_id}/events", path, headers=auth(user))
    assert [event for event, _ in stream_events(events.text)] == ["status", "end"]
    assert (
        contract.call("get", "/api/job/{job_id}/events", path, headers=auth(stranger)).status_code
        == 404
    )
    assert contract.answered == JOBS


def test_cancel_answers_as_described(
    contract: Contract, db: Database, settings: Settings, user: NewUser
) -> None:
    template = "/api/job/{job_id}/cancel"
    queued = contract.call("post", "/api/jobs", json={"count": 3}, headers=auth(user)).json()
    path = {"job_id": queued["id"]}
    cancelled = contract.call("post", template, path, headers=auth(user))
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    assert contract.call("post", template, path, headers=auth(user)).json() == cancelled.json()
    running = contract.call("post", "/api/jobs", json={"count": 3}, headers=auth(user)).json()
    assert slices.claim(db.sessions, uuid.UUID(running["id"]), 0, 60.0) is not None
    stopping = contract.call("post", template, {"job_id": running["id"]}, headers=auth(user))
    assert (stopping.status_code, stopping.json()["status"]) == (202, "running")
    finished = {"job_id": finished_job(contract, db, settings, user)}
    assert contract.call("post", template, finished, headers=auth(user)).status_code == 409
    stranger = create_user(db.sessions, "eve", credits=1)
    assert contract.call("post", template, path, headers=auth(stranger)).status_code == 404
    assert contract.call("post", template, {"job_id": "42"}, headers=auth(user)).status_code == 400
    assert contract.call("post", template, path).status_code == 401
    contract.answered -= JOBS
    assert contract.answered == CANCEL


def test_own_card_credits_and_vault_answer_as_described(
    contract: Contract, db: Database, settings: Settings, user: NewUser
) -> None:
    finished_job(contract, db, settings, user, count=2)
    contract.answered.clear()
    assert contract.call("get", "/api/stats", headers=auth(user)).json()["user_id"] == str(
        user.user_id
    )
    kinds = [
        e["kind"]
        for e in contract.call("get", "/api/credits", headers=auth(user)).json()["entries"]
    ]
    assert {"grant", "hold"} <= set(kinds)
    assert (
        contract.call("get", "/api/credits", params={"limit": 0}, headers=auth(user)).status_code
        == 400
    )
    assert contract.call("get", "/api/stats").status_code == 401
    me = contract.call("get", "/api/me", headers=auth(user)).json()
    assert (me["user_id"], me["is_admin"]) == (str(user.user_id), False)
    items = contract.call("get", "/api/accounts", headers=auth(user)).json()["items"]
    assert len(items) == 2
    first, second = ({"account_id": item["id"]} for item in items)
    reveal = "/api/accounts/{account_id}/reveal"
    assert contract.call("post", reveal, first, headers=auth(user)).json()["id"] == items[0]["id"]
    assert (
        contract.call("delete", "/api/accounts/{account_id}", first, headers=auth(user)).status_code
        == 204
    )
    assert (
        contract.call("delete", "/api/accounts/{account_id}", first, headers=auth(user)).status_code
        == 404
    )
    assert contract.call("post", reveal, first, headers=auth(user)).status_code == 404
    assert (
        contract.call("post", reveal, {"account_id": "zz"}, headers=auth(user)).status_code == 400
    )
    assert contract.call("post", reveal, second).status_code == 401
    assert contract.answered == OWN


def test_admin_routes_answer_as_described(contract: Contract, db: Database, user: NewUser) -> None:
    admin = create_user(db.sessions, "operator", is_admin=True)
    clean = run_report(db.sessions, repair=False, origin="cli")
    with db.engine.begin() as connection:
        connection.execute(
            text("UPDATE user_credits SET balance = balance + 4 WHERE user_id = :u"),
            {"u": user.user_id},
        )
    drifted = run_report(db.sessions, repair=False, origin="cli")
    listed = contract.call("get", "/api/admin/reports", headers=auth(admin)).json()
    assert [r["id"] for r in listed["items"]] == [drifted.id, clean.id]
    assert contract.call("get", "/api/admin/reports", headers=auth(user)).status_code == 403
    assert (
        contract.call(
            "get", "/api/admin/reports", params={"limit": 0}, headers=auth(admin)
        ).status_code
        == 400
    )
    template = "/api/admin/reports/{report_id}"
    for report_id in (drifted.id, "latest"):
        shown = contract.call("get", template, {"report_id": report_id}, headers=auth(admin))
        assert len(shown.json()["drifts"]) == 1
    assert (
        contract.call("get", template, {"report_id": 999}, headers=auth(admin)).status_code == 404
    )
    assert (
        contract.call("get", template, {"report_id": "abc"}, headers=auth(admin)).status_code == 400
    )
    assert (
        contract.call("get", template, {"report_id": "latest"}, headers=auth(user)).status_code
        == 403
    )
    assert contract.call("get", template, {"report_id": "latest"}).status_code == 401
    assert contract.answered == ADMIN


def test_operator_routes_answer_as_described(
    contract: Contract, db: Database, user: NewUser
) -> None:
    admin = create_user(db.sessions, "operator", is_admin=True)
    created = contract.call(
        "post", "/api/admin/users", json={"name": "bo", "credits": 3}, headers=auth(admin)
    )
    assert created.status_code == 201
    taken = {"name": "bo", "id": created.json()["user_id"]}
    assert (
        contract.call("post", "/api/admin/users", json=taken, headers=auth(admin)).status_code
        == 409
    )
    assert (
        contract.call("post", "/api/admin/users", json={}, headers=auth(admin)).status_code == 400
    )
    assert (
        contract.call("post", "/api/admin/users", json=taken, headers=auth(user)).status_code == 403
    )
    assert contract.call("post", "/api/admin/users", json=taken).status_code == 401
    credits = "/api/admin/users/{user_id}/credits"
    mine = {"user_id": user.user_id}
    grant = {"amount": 5, "reference": "pay_1"}
    for status in (201, 200):
        assert (
            contract.call("post", credits, mine, json=grant, headers=auth(admin)).status_code
            == status
        )
    refund = {"amount": -(10**6), "reference": "refund_1"}
    assert contract.call("post", credits, mine, json=refund, headers=auth(admin)).status_code == 409
    nobody = {"user_id": uuid.uuid4()}
    assert (
        contract.call("post", credits, nobody, json=grant, headers=auth(admin)).status_code == 404
    )
    assert contract.call("post", credits, mine, json=grant, headers=auth(user)).status_code == 403
    tokens = "/api/admin/users/{user_id}/tokens"
    issued = contract.call("post", tokens, mine, json={"label": "ci"}, headers=auth(admin))
    assert issued.status_code == 201
    assert contract.call("post", tokens, nobody, json={}, headers=auth(admin)).status_code == 404
    listed = contract.call("get", "/api/tokens", headers=auth(user)).json()["items"]
    assert len(listed) == 2
    one = "/api/tokens/{token_id}"
    token_id = {"token_id": issued.json()["id"]}
    assert contract.call("delete", one, token_id, headers=auth(user)).status_code == 204
    assert contract.call("delete", one, token_id, headers=auth(user)).status_code == 404
    assert contract.call("delete", one, {"token_id": "x"}, headers=auth(user)).status_code == 400
    assert contract.answered == OPERATOR


def test_delivery_routes_answer_as_described(
    contract: Contract, db: Database, settings: Settings, user: NewUser
) -> None:
    lossy = settings.with_changes(sandbox=SandboxOptions(failure_rate=0.5))
    job = contract.call("post", "/api/jobs", json={"count": 8}, headers=auth(user)).json()
    process_job(db, lossy, uuid.UUID(job["id"]))
    contract.answered.clear()
    path = {"job_id": job["id"]}
    stranger = create_user(db.sessions, "eve", credits=1)
    page = contract.call("get", "/api/job/{job_id}/accounts", path, headers=auth(user)).json()
    assert page["next_cursor"] is None
    bad = {"cursor": "!"}
    assert (
        contract.call(
            "get", "/api/job/{job_id}/accounts", path, params=bad, headers=auth(user)
        ).status_code
        == 400
    )
    assert (
        contract.call("get", "/api/job/{job_id}/accounts", path, headers=auth(stranger)).status_code
        == 404
    )
    body = {"format": "ndjson", "include": "secrets"}
    export = "/api/job/{job_id}/export"
    assert contract.call("post", export, path, json=body, headers=auth(user)).status_code == 200
    assert contract.call("post", export, path, json=body, headers=auth(stranger)).status_code == 404
    assert contract.call("post", "/api/exports", json={}, headers=auth(user)).status_code == 200
    bad_body = {"format": "xml"}
    assert (
        contract.call("post", "/api/exports", json=bad_body, headers=auth(user)).status_code == 400
    )
    assert len(contract.call("get", "/api/exports", headers=auth(user)).json()["items"]) == 2
    retry = "/api/job/{job_id}/retry"
    assert contract.call("post", retry, path, headers=auth(user)).status_code == 201
    assert contract.call("post", retry, path, headers=auth(user)).status_code == 200
    assert contract.call("post", retry, path, headers=auth(stranger)).status_code == 404
    hook = {"url": "http://93.184.216.34/hook"}
    made = contract.call("post", "/api/webhooks", json=hook, headers=auth(user))
    assert made.status_code == 201
    inside = {"url": "http://127.0.0.1/hook"}
    assert (
        contract.call("post", "/api/webhooks", json=inside, headers=auth(user)).status_code == 400
    )
    assert len(contract.call("get", "/api/webhooks", headers=auth(user)).json()["items"]) == 1
    endpoint = {"endpoint_id": made.json()["id"]}
    test = contract.call("post", "/api/webhooks/{endpoint_id}/test", endpoint, headers=auth(user))
    assert test.status_code == 202
    log = "/api/webhooks/{endpoint_id}/deliveries"
    assert contract.call("get", log, endpoint, headers=auth(user)).json()["items"][0]["id"]
    replay = "/api/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay"
    again = {**endpoint, "delivery_id": test.json()["id"]}
    assert contract.call("post", replay, again, headers=auth(user)).status_code == 202
    assert contract.call("post", replay, again, headers=auth(stranger)).status_code == 404
    removed = contract.call("delete", "/api/webhooks/{endpoint_id}", endpoint, headers=auth(user))
    assert removed.status_code == 204
    assert contract.call("get", log, endpoint, headers=auth(user)).status_code == 404
    assert contract.answered == DELIVERY
