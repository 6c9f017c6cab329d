"""Bad input answers a JSON 4xx and changes nothing; credits, idempotency, lists, secrets."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select, text
from starlette.testclient import TestClient

from core import credits
from core.crypto import SecretBox
from core.database import Database
from core.schema import CreditLedger, Job, UserAccount
from core.settings import Settings
from core.users import NewUser, create_user
from harness.waiting import wait_for
from tests.support.inline import RecordedEnqueue, app_settings, process_job
from tests.support.state import assert_invariants, totals
from web.app import create_app

MAX_COUNT = 500
CREDITS = 10_000


@pytest.fixture(scope="module")
def limited_settings(database_url: str, redis_url: str) -> Settings:
    return app_settings(database_url, redis_url, max_job_count=MAX_COUNT)


@pytest.fixture(scope="module")
def shared_enqueue() -> RecordedEnqueue:
    return RecordedEnqueue()


@pytest.fixture(scope="module")
def shared_client(
    limited_settings: Settings, shared_enqueue: RecordedEnqueue
) -> Iterator[TestClient]:
    with TestClient(create_app(limited_settings, enqueue=shared_enqueue)) as test_client:
        yield test_client


@pytest.fixture
def enqueue(shared_enqueue: RecordedEnqueue) -> RecordedEnqueue:
    shared_enqueue.calls.clear()
    return shared_enqueue


@pytest.fixture
def client(shared_client: TestClient, db: Database, enqueue: RecordedEnqueue) -> TestClient:
    return shared_client


@pytest.fixture
def user(db: Database) -> NewUser:
    return create_user(db.sessions, "alice", credits=CREDITS)


def auth(user: NewUser, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}", **extra}


def snapshot(db: Database) -> dict[str, int]:
    """Every figure a request could change: totals, jobs, slices and balances."""
    with db.engine.connect() as connection:
        extra = (
            connection.execute(
                text(
                    "SELECT (SELECT count(*) FROM jobs) AS jobs, "
                    "(SELECT count(*) FROM job_slices) AS slices, "
                    "(SELECT coalesce(sum(balance), 0) FROM user_credits) AS balances, "
                    "(SELECT count(*) FROM user_accounts WHERE deleted_at IS NOT NULL) AS deleted"
                )
            )
            .mappings()
            .one()
        )
    return {**totals(db), **{k: int(v) for k, v in extra.items()}}


def assert_json_error(answer: Any, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    error: dict[str, Any] = answer.json()["error"]
    assert error["code"] == code and error["message"]
    return error


BAD_BODIES: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("not json", b"count=5"),
    ("truncated json", b'{"count": 5'),
    ("invalid utf-8", b'{"count": 5, "x": "\xff"}'),
    ("array", b"[5]"),
    ("number", b"5"),
    ("string", b'"count"'),
    ("null", b"null"),
    ("missing count", b'{"provider": "sandbox"}'),
    ("count null", b'{"count": null}'),
    ("count string", b'{"count": "5"}'),
    ("count float", b'{"count": 5.0}'),
    ("count exponent", b'{"count": 1e2}'),
    ("count true", b'{"count": true}'),
    ("count list", b'{"count": [5]}'),
    ("count zero", b'{"count": 0}'),
    ("count negative", b'{"count": -3}'),
    ("count above max", b'{"count": %d}' % (MAX_COUNT + 1)),
    ("count huge", b'{"count": 100000000000000000000000000000}'),
    ("unknown provider", b'{"count": 5, "provider": "mailinator"}'),
    ("provider number", b'{"count": 5, "provider": 7}'),
    ("provider null", b'{"count": 5, "provider": null}'),
    ("provider object", b'{"count": 5, "provider": {"name": "sandbox"}}'),
    ("unknown field", b'{"count": 5, "provder": "sandbox"}'),
    ("nested deep", b'{"count": 5, "x": ' + b"[" * 1000 + b"]" * 1000 + b"}"),
    ("nested deeper", b"[" * 5000 + b"]" * 5000),
    ("provider nested", b'{"count": 5, "provider": ' + b"[" * 1000 + b"]" * 1000 + b"}"),
    ("count beyond float", b'{"count": 1e999999}'),
    ("count of 5000 digits", b'{"count": ' + b"9" * 5000 + b"}"),
    ("lone surrogate", b'{"count": 5, "provider": "\\ud800"}'),
    ("utf-16", '{"count": 5}'.encode("utf-16")),
    ("byte order mark", b"\xef\xbb\xbf" + b'{"count": 5}'),
]


@pytest.mark.parametrize(("case", "body"), BAD_BODIES, ids=[c for c, _ in BAD_BODIES])
def test_bad_submit_bodies_answer_400_and_change_nothing(
    client: TestClient,
    db: Database,
    user: NewUser,
    enqueue: RecordedEnqueue,
    case: str,
    body: bytes,
) -> None:
    before = snapshot(db)
    answer = client.post(
        "/api/jobs", content=body, headers=auth(user, **{"Content-Type": "application/json"})
    )
    assert_json_error(answer, 400, "invalid_input")
    assert snapshot(db) == before
    assert enqueue.calls == []


def test_an_unknown_field_is_named(client: TestClient, user: NewUser) -> None:
    answer = client.post("/api/jobs", json={"count": 5, "provder": "x"}, headers=auth(user))
    assert assert_json_error(answer, 400, "invalid_input")["field"] == "provder"


def test_a_body_that_is_too_large_answers_413_and_changes_nothing(
    client: TestClient, db: Database, user: NewUser, enqueue: RecordedEnqueue
) -> None:
    before = snapshot(db)
    body = b'{"count": 5, "pad": "' + b"x" * 20_000 + b'"}'
    answer = client.post("/api/jobs", content=body, headers=auth(user))
    assert_json_error(answer, 413, "payload_too_large")
    assert snapshot(db) == before
    assert enqueue.calls == []


def test_count_at_the_maximum_is_accepted(client: TestClient, db: Database, user: NewUser) -> None:
    answer = client.post("/api/jobs", json={"count": MAX_COUNT}, headers=auth(user))
    assert answer.status_code == 202, answer.text
    assert answer.json()["requested"] == MAX_COUNT


def test_bad_idempotency_key_answers_400(client: TestClient, db: Database, user: NewUser) -> None:
    before = snapshot(db)
    answer = client.post(
        "/api/jobs", json={"count": 1}, headers=auth(user, **{"Idempotency-Key": "k" * 201})
    )
    assert assert_json_error(answer, 400, "invalid_input")["field"] == "Idempotency-Key"
    assert snapshot(db) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/job/not-a-uuid"),
        ("GET", "/api/jobs/12345"),
        ("GET", "/api/job/0b5e9c1e-4f7b-4d3c-9d71-2a4e5c0f9b8"),
        ("DELETE", "/api/accounts/not-a-uuid"),
        ("POST", "/api/accounts/zz/reveal"),
        ("GET", "/api/job/0B5E9C1E-4F7B-4D3C-9D71-2A4E5C0F9B8A"),
        ("GET", "/api/job/{0b5e9c1e-4f7b-4d3c-9d71-2a4e5c0f9b8a}"),
        ("GET", "/api/job/urn:uuid:0b5e9c1e-4f7b-4d3c-9d71-2a4e5c0f9b8a"),
        ("GET", "/api/job/0b5e9c1e4f7b4d3c9d712a4e5c0f9b8a"),
        ("DELETE", "/api/accounts/0b5e9c1e4f7b4d3c9d712a4e5c0f9b8a"),
    ],
)
def test_malformed_uuid_in_path_answers_400(
    client: TestClient, db: Database, user: NewUser, method: str, path: str
) -> None:
    before = snapshot(db)
    error = assert_json_error(
        client.request(method, path, headers=auth(user)), 400, "invalid_input"
    )
    assert error["field"] in ("job_id", "account_id")
    assert snapshot(db) == before


@pytest.mark.parametrize("path", ["/api/jobs", "/api/accounts", "/api/credits"])
@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=ten",
        "limit=2.5",
        "limit=1_0",
        "offset=-1",
        "offset=0",
        "offset=20",
        "cursor=",
        "cursor=abc",
        "cursor=abc.def",
        "cursor=" + "A" * 600,
    ],
)
def test_bad_limit_offset_or_cursor_answers_400(
    client: TestClient, db: Database, user: NewUser, path: str, query: str
) -> None:
    before = snapshot(db)
    assert_json_error(client.get(f"{path}?{query}", headers=auth(user)), 400, "invalid_input")
    assert snapshot(db) == before


def test_unknown_route_and_wrong_method_answer_json(client: TestClient, user: NewUser) -> None:
    assert_json_error(client.get("/api/nothing", headers=auth(user)), 404, "not_found")
    assert_json_error(client.put("/api/jobs", headers=auth(user)), 405, "method_not_allowed")


def test_insufficient_credits_answer_402_and_create_nothing(
    client: TestClient, db: Database, limited_settings: Settings, enqueue: RecordedEnqueue
) -> None:
    poor = create_user(db.sessions, "poor", credits=10)
    before = snapshot(db)
    answer = client.post(
        "/api/jobs", json={"count": 11}, headers=auth(poor, **{"Idempotency-Key": "k1"})
    )
    error = assert_json_error(answer, 402, "insufficient_credits")
    assert (error["needed"], error["balance"]) == (11 * limited_settings.price, 10)
    assert snapshot(db) == before
    assert enqueue.calls == []
    assert client.get("/api/credits", headers=auth(poor)).json()["balance"] == 10
    # The refused key stays free: the same key works once the balance covers the job.
    answer = client.post(
        "/api/jobs", json={"count": 10}, headers=auth(poor, **{"Idempotency-Key": "k1"})
    )
    assert answer.status_code == 202
    assert client.get("/api/credits", headers=auth(poor)).json()["balance"] == 0


def count_rows(db: Database, user_id: uuid.UUID) -> tuple[int, int]:
    with db.sessions() as session:
        jobs = session.scalar(select(func.count()).select_from(Job).where(Job.user_id == user_id))
        holds = session.scalar(
            select(func.count())
            .select_from(CreditLedger)
            .where(CreditLedger.user_id == user_id, CreditLedger.kind == "hold")
        )
    return int(jobs or 0), int(holds or 0)


def test_same_idempotency_key_returns_the_same_job(
    client: TestClient, db: Database, user: NewUser, enqueue: RecordedEnqueue
) -> None:
    headers = auth(user, **{"Idempotency-Key": "order-42"})
    first = client.post("/api/jobs", json={"count": 7}, headers=headers)
    second = client.post("/api/jobs", json={"count": 7}, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert count_rows(db, user.user_id) == (1, 1)
    wait_for(client.app.state.sender.idle, timeout=10)  # type: ignore[attr-defined]
    assert len(enqueue.calls) == 1
    assert client.get("/api/credits", headers=auth(user)).json()["balance"] == CREDITS - 7


def test_same_idempotency_key_with_another_body_answers_422_and_changes_nothing(
    client: TestClient, db: Database, user: NewUser
) -> None:
    headers = auth(user, **{"Idempotency-Key": "order-43"})
    first = client.post("/api/jobs", json={"count": 7}, headers=headers)
    assert first.status_code == 202
    error = assert_json_error(
        client.post("/api/jobs", json={"count": 8}, headers=headers), 422, "idempotency_key_reused"
    )
    assert error["field"] == "Idempotency-Key"
    # The default provider named outright is the same request as leaving it out.
    spelled = client.post("/api/jobs", json={"count": 7, "provider": "sandbox"}, headers=headers)
    assert spelled.json()["id"] == first.json()["id"]
    assert count_rows(db, user.user_id) == (1, 1)
    assert client.get("/api/credits", headers=auth(user)).json()["balance"] == CREDITS - 7


def test_same_idempotency_key_from_many_threads_creates_one_job(
    client: TestClient, db: Database, user: NewUser, enqueue: RecordedEnqueue
) -> None:
    threads = 8
    barrier = threading.Barrier(threads)
    answers: list[Any] = []

    def post() -> None:
        barrier.wait()
        answers.append(
            client.post(
                "/api/jobs",
                json={"count": 5},
                headers=auth(user, **{"Idempotency-Key": "burst"}),
            )
        )

    workers = [threading.Thread(target=post) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [a.status_code for a in answers] == [202] * threads
    assert len({a.json()["id"] for a in answers}) == 1
    assert count_rows(db, user.user_id) == (1, 1)
    wait_for(client.app.state.sender.idle, timeout=10)  # type: ignore[attr-defined]
    assert len(enqueue.calls) == 1
    assert client.get("/api/credits", headers=auth(user)).json()["balance"] == CREDITS - 5


def test_same_idempotency_key_from_two_users_makes_two_jobs(
    client: TestClient, db: Database, user: NewUser
) -> None:
    other = create_user(db.sessions, "bob", credits=CREDITS)
    ids = [
        client.post(
            "/api/jobs", json={"count": 3}, headers=auth(u, **{"Idempotency-Key": "shared"})
        ).json()["id"]
        for u in (user, other)
    ]
    assert ids[0] != ids[1]
    assert count_rows(db, user.user_id) == (1, 1)
    assert count_rows(db, other.user_id) == (1, 1)


def test_jobs_list_is_paginated_newest_first(client: TestClient, user: NewUser) -> None:
    created = [
        client.post("/api/jobs", json={"count": n}, headers=auth(user)).json()["id"]
        for n in range(1, 8)
    ]
    pages, path = [], "/api/jobs?limit=3"
    while path:
        answer = client.get(path, headers=auth(user))
        pages.append(answer.json())
        path = pages[-1]["next"]
        assert answer.headers.get("link") == (path and f'<{path}>; rel="next"')
    assert [p["total"] for p in pages] == [7, 7, 7]
    assert [len(p["items"]) for p in pages] == [3, 3, 1]
    assert [p["limit"] for p in pages] == [3, 3, 3]
    assert pages[0]["next"] == f"/api/jobs?limit=3&cursor={pages[0]['next_cursor']}"
    listed = [job["id"] for p in pages for job in p["items"]]
    assert listed == list(reversed(created))
    assert [job["requested"] for job in pages[0]["items"]] == [7, 6, 5]


def test_vault_list_never_contains_a_secret_and_secrets_are_encrypted(
    client: TestClient, db: Database, limited_settings: Settings, user: NewUser
) -> None:
    job_id = client.post("/api/jobs", json={"count": 30}, headers=auth(user)).json()["id"]
    process_job(db, limited_settings, uuid.UUID(job_id))
    listed = client.get("/api/accounts?limit=100", headers=auth(user))
    status = client.get(f"/api/job/{job_id}", headers=auth(user))
    items = listed.json()["items"]
    assert len(items) == 30
    box = SecretBox(limited_settings.fernet_key)
    for item in items:
        reveal = client.post(f"/api/accounts/{item['id']}/reveal", headers=auth(user))
        assert reveal.status_code == 200
        assert reveal.headers["cache-control"] == "no-store"
        secret = reveal.json()["secret"]
        assert len(secret) >= 16
        assert secret not in listed.text and secret not in status.text
        assert not any("secret" in key for key in item)
        with db.sessions() as session:
            row = session.get(UserAccount, uuid.UUID(item["id"]))
            assert row is not None
            stored = bytes(row.secret_encrypted)
        assert secret.encode() not in stored
        assert box.open(stored) == secret
    assert_invariants(db)


def test_a_deleted_account_leaves_the_list_and_cannot_be_deleted_twice(
    client: TestClient, db: Database, limited_settings: Settings, user: NewUser
) -> None:
    job_id = client.post("/api/jobs", json={"count": 4}, headers=auth(user)).json()["id"]
    process_job(db, limited_settings, uuid.UUID(job_id))
    target = client.get("/api/accounts", headers=auth(user)).json()["items"][0]["id"]
    assert client.delete(f"/api/accounts/{target}", headers=auth(user)).status_code == 204
    before = snapshot(db)
    assert_json_error(
        client.delete(f"/api/accounts/{target}", headers=auth(user)), 404, "not_found"
    )
    assert_json_error(
        client.post(f"/api/accounts/{target}/reveal", headers=auth(user)), 404, "not_found"
    )
    assert snapshot(db) == before
    listed = client.get("/api/accounts", headers=auth(user)).json()
    assert len(listed["items"]) == 3 and target not in {a["id"] for a in listed["items"]}
    assert_invariants(db)  # applies the outbox: the total is the card's business_centers
    assert client.get("/api/accounts", headers=auth(user)).json()["total"] == 3
    stats = client.get("/api/stats", headers=auth(user)).json()
    assert stats["business_centers"] == 3 and stats["successful"] == 4


def test_the_ledger_pages_newest_first(client: TestClient, db: Database, user: NewUser) -> None:
    for amount in (1, 2, 3):
        credits.grant(db.sessions, user.user_id, amount, note=f"grant {amount}")
    first = client.get("/api/credits?limit=2", headers=auth(user)).json()
    rest = client.get(first["next"], headers=auth(user)).json()
    assert first["total"] == rest["total"] == 4  # the initial grant and three more
    assert [e["amount"] for e in first["entries"]] == [3, 2]
    assert [e["amount"] for e in rest["entries"]] == [1, CREDITS]
    assert (rest["limit"], rest["next"], rest["next_cursor"]) == (2, None, None)
    assert first["balance"] == rest["balance"] == CREDITS + 6


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (b'{"count": 1, "count": 2}', "count"),
        (b'{"provider": "sandbox", "count": 3, "provider": "sandbox"}', "provider"),
    ],
)
def test_a_key_given_twice_answers_400_naming_it_and_changes_nothing(
    client: TestClient, db: Database, user: NewUser, enqueue: RecordedEnqueue, body: bytes, key: str
) -> None:
    before = snapshot(db)
    answer = client.post(
        "/api/jobs", content=body, headers=auth(user, **{"Content-Type": "application/json"})
    )
    error = assert_json_error(answer, 400, "invalid_input")
    assert error["field"] == key and key in error["message"]
    assert snapshot(db) == before
    assert enqueue.calls == []
