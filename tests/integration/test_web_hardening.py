"""Security headers, failed-authentication limits and a database that is down."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from core.database import Database
from core.settings import Settings
from core.tokens import new_token
from core.users import NewUser, create_user
from devstack.processes import free_port
from tests.support.inline import RecordedEnqueue
from web.app import create_app

LIMIT = 3


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    limited = settings.with_changes(auth_failures_per_minute=LIMIT)
    with TestClient(create_app(limited, enqueue=RecordedEnqueue())) as test_client:
        yield test_client


@pytest.fixture
def user(db: Database) -> NewUser:
    return create_user(db.sessions, "ada", credits=10)


@pytest.fixture
def dead_database(settings: Settings) -> Settings:
    """Settings whose database is a port nothing listens on."""
    return settings.with_changes(
        database_url=f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/nothing"
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "path", ["/", "/docs", "/static/app.js", "/openapi.json", "/api/stats", "/api/nothing"]
)
def test_every_answer_carries_the_security_headers(client: TestClient, path: str) -> None:
    headers = client.get(path).headers
    policy = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    assert "'unsafe-inline'" not in policy
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


def test_failed_authentications_answer_401_then_429_with_retry_after(
    client: TestClient, user: NewUser
) -> None:
    statuses = [client.get("/api/stats", headers=bearer(new_token())).status_code]
    statuses += [client.get("/api/stats", headers=bearer("junk")).status_code]
    statuses += [client.get("/api/me", headers=bearer(new_token())).status_code]
    assert statuses == [401] * LIMIT
    refused = client.get("/api/stats", headers=bearer(new_token()))
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_requests"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # Only failures are limited: a valid token never seen before is still served.
    assert client.get("/api/stats", headers=bearer(user.token)).status_code == 200
    assert client.get("/healthz").status_code == 200


def test_a_token_seen_valid_still_works_from_a_limited_address(
    client: TestClient, user: NewUser
) -> None:
    assert client.get("/api/stats", headers=bearer(user.token)).status_code == 200
    for _ in range(LIMIT):
        assert client.get("/api/stats", headers=bearer(new_token())).status_code == 401
    assert client.get("/api/stats", headers=bearer(user.token)).status_code == 200


@pytest.mark.parametrize("token", ["junk", "tly_short", "tly_" + "a" * 44, "tly_" + "!" * 43])
def test_a_malformed_token_is_refused_without_the_database(
    dead_database: Settings, token: str
) -> None:
    with TestClient(create_app(dead_database, enqueue=RecordedEnqueue())) as client:
        answer = client.get("/api/stats", headers=bearer(token))
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] == "unauthorized"


def test_a_database_that_is_down_answers_503_with_retry_after(dead_database: Settings) -> None:
    with TestClient(create_app(dead_database, enqueue=RecordedEnqueue())) as client:
        answer = client.get("/api/stats", headers=bearer(new_token()))
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "unavailable"
    assert int(answer.headers["retry-after"]) > 0


def test_an_endpoint_whose_database_goes_down_answers_503(
    client: TestClient, dead_database: Settings, user: NewUser
) -> None:
    assert client.get("/api/stats", headers=bearer(user.token)).status_code == 200
    state = client.app.state  # type: ignore[attr-defined]
    working = state.database
    state.database = Database.from_settings(dead_database, pool_size=1)
    try:
        for path in ("/api/stats", "/api/credits", "/api/accounts", "/api/jobs"):
            answer = client.get(path, headers=bearer(user.token))  # the token is cached
            assert answer.status_code == 503, (path, answer.text)
            assert answer.headers["retry-after"] and answer.json()["error"]["code"] == "unavailable"
    finally:
        state.database.dispose()
        state.database = working
