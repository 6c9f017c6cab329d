"""/openapi.json describes every route the app answers, with bodies, codes and auth."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from core.database import Database
from core.settings import Settings
from core.stats import STAT_NAMES
from core.users import create_user
from core.vocabulary import LABELS, JobStatus, LedgerKind
from tests.support.inline import RecordedEnqueue
from web.app import create_app, routes
from web.contract.openapi import route_operations

# The operator probes: the scrape token (TALLY_METRICS_TOKEN), not a user token.
PROBES = ("/metrics", "/readyz")


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, enqueue=RecordedEnqueue())) as test_client:
        yield test_client


@pytest.fixture
def spec(client: TestClient) -> dict[str, Any]:
    answer = client.get("/openapi.json")
    assert answer.status_code == 200
    return dict(answer.json())


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield str(value)
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_every_route_is_described(spec: dict[str, Any]) -> None:
    operations = route_operations(routes())
    assert len(operations) > 15
    missing = [(p, m) for p, m in operations if m not in spec["paths"].get(p, {})]
    assert missing == []
    described = {(p, m) for p, methods in spec["paths"].items() for m in methods}
    assert described == set(operations)


def test_every_operation_has_codes_bodies_and_auth(spec: dict[str, Any]) -> None:
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            codes = set(operation["responses"])
            assert any(code.startswith("2") for code in codes), (path, method)
            if path.startswith("/api/"):
                assert "security" not in operation, (path, method)  # the bearer default
                assert "401" in codes, (path, method)
            elif path in PROBES:
                assert operation["security"] == [{"scrape": []}], (path, method)
                assert "401" in codes, (path, method)
            else:
                assert operation["security"] == [], (path, method)
    assert "requestBody" in spec["paths"]["/api/jobs"]["post"]
    assert {"202", "400", "401", "402"} <= set(spec["paths"]["/api/jobs"]["post"]["responses"])


def test_every_schema_reference_resolves(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    for ref in set(_refs(spec)):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


def test_described_shapes_match_real_answers(
    client: TestClient, db: Database, spec: dict[str, Any]
) -> None:
    user = create_user(db.sessions, "ada", credits=100)
    headers = {"Authorization": f"Bearer {user.token}"}
    schemas = spec["components"]["schemas"]
    job = client.post("/api/jobs", json={"count": 3}, headers=headers).json()
    assert set(job) == set(schemas["Job"]["properties"])
    stats = client.get("/api/stats", headers=headers).json()
    assert set(stats) == set(schemas["Stats"]["properties"])
    credits = client.get("/api/credits", headers=headers).json()
    assert set(credits) == set(schemas["Credits"]["properties"])
    assert set(credits["entries"][0]) == set(schemas["LedgerEntry"]["properties"])
    page = client.get("/api/jobs", headers=headers).json()
    assert set(page) == set(schemas["JobPage"]["properties"])
    error = client.post("/api/jobs", json={"count": 0}, headers=headers).json()
    detail = _resolve(spec, schemas["Error"]["properties"]["error"])
    assert set(error["error"]) <= set(detail["properties"])


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follow a `#/components/schemas/...` reference to the schema it names."""
    ref = schema.get("$ref")
    if ref is None:
        return schema
    return dict(spec["components"]["schemas"][ref.removeprefix("#/components/schemas/")])


def test_schemas_follow_the_vocabulary_and_the_stats(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert set(schemas["JobStatus"]["enum"]) == set(JobStatus)
    assert set(schemas["LedgerKind"]["enum"]) == set(LedgerKind)
    assert list(schemas["Stats"]["properties"]) == ["user_id", *STAT_NAMES]
    assert schemas["Stats"]["required"] == ["user_id", *STAT_NAMES]
    assert schemas["LedgerEntry"]["properties"]["note"] == {"type": "string"}
    assert "provider" in schemas["Job"]["required"]


def test_each_reason_comes_with_the_words_people_read(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    for kind, labels in LABELS.items():
        assert set(schemas[kind.__name__]["enum"]) == set(kind)
        assert schemas[kind.__name__]["x-labels"] == {str(k): v for k, v in labels.items()}
    job = schemas["Job"]["properties"]
    assert job["waiting"]["anyOf"][0] == {"$ref": "#/components/schemas/WaitingReason"}
    reasons = job["failures_by_reason"]["propertyNames"]
    assert reasons == {"$ref": "#/components/schemas/FailureReason"}


def test_docs_page_renders_the_description(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/static/docs.js" in page.text
    assert client.get("/static/docs.js").status_code == 200
