"""The operator API: users, credits granted once per reference, tokens issued and revoked."""

from __future__ import annotations

import concurrent.futures
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from core.database import Database
from core.schema import CreditLedger
from core.settings import Settings
from core.users import NewUser, create_user, revoke_token
from harness.waiting import wait_for
from tests.support.inline import RecordedEnqueue
from tests.support.live_server import serve
from web.app import create_app

SERVICE_KEY = "svc_" + "k" * 40
SERVICE = {"Authorization": f"Bearer {SERVICE_KEY}"}


@pytest.fixture
def operator_settings(settings: Settings) -> Settings:
    return settings.with_changes(service_key=SERVICE_KEY)


@pytest.fixture
def client(operator_settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(operator_settings, enqueue=RecordedEnqueue())) as test_client:
        yield test_client


@pytest.fixture
def user(db: Database) -> NewUser:
    return create_user(db.sessions, "ana", credits=10)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def credits_url(user_id: uuid.UUID) -> str:
    return f"/api/admin/users/{user_id}/credits"


def ledger(db: Database, user_id: uuid.UUID) -> list[tuple[str, int, str | None]]:
    with db.sessions() as session:
        rows = session.execute(
            select(CreditLedger.kind, CreditLedger.amount, CreditLedger.reference)
            .where(CreditLedger.user_id == user_id)
            .order_by(CreditLedger.id)
        ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def balance(client: TestClient, user: NewUser) -> int:
    return int(client.get("/api/credits", headers=bearer(user.token)).json()["balance"])


def test_the_service_key_creates_a_user_with_the_frontends_id_and_a_working_token(
    client: TestClient,
) -> None:
    wanted = str(uuid.uuid4())
    body = {"name": "bo", "id": wanted, "credits": 7}
    created = client.post("/api/admin/users", json=body, headers=SERVICE)
    assert created.status_code == 201, created.text
    assert created.json()["user_id"] == wanted
    token = created.json()["token"]
    assert client.get("/api/me", headers=bearer(token)).json()["user_id"] == wanted
    assert client.get("/api/credits", headers=bearer(token)).json()["balance"] == 7
    again = client.post("/api/admin/users", json=body, headers=SERVICE)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "conflict")


def test_only_admins_and_the_service_key_reach_the_operator_api(
    client: TestClient, db: Database, user: NewUser
) -> None:
    admin = create_user(db.sessions, "ops", is_admin=True)
    grant = {"amount": 1, "reference": "pay_admin"}
    assert (
        client.post(credits_url(user.user_id), json=grant, headers=bearer(admin.token)).status_code
        == 201
    )
    for headers, status in [
        (bearer(user.token), 403),
        ({}, 401),
        (bearer("svc_" + "x" * 40), 401),
    ]:
        answer = client.post(
            credits_url(user.user_id), json={**grant, "reference": "p2"}, headers=headers
        )
        assert answer.status_code == status, answer.text
    # The service key acts for no user.
    assert client.get("/api/stats", headers=SERVICE).status_code == 403
    assert ledger(db, user.user_id)[-1] == ("grant", 1, "pay_admin")


def test_a_webhook_delivered_three_times_grants_once(
    client: TestClient, db: Database, user: NewUser
) -> None:
    grant = {"amount": 500, "reference": "pay_3x", "note": "order 17"}
    answers = [
        client.post(credits_url(user.user_id), json=grant, headers=SERVICE) for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [201, 200, 200]
    assert [a.json()["applied"] for a in answers] == [True, False, False]
    assert {a.json()["balance"] for a in answers} == {510}
    assert balance(client, user) == 510
    other = client.post(credits_url(user.user_id), json={**grant, "amount": 50}, headers=SERVICE)
    assert (other.status_code, other.json()["error"]["code"]) == (409, "conflict")
    stranger = create_user(db.sessions, "eve")
    elsewhere = client.post(credits_url(stranger.user_id), json=grant, headers=SERVICE)
    assert elsewhere.status_code == 409
    assert balance(client, user) == 510


def test_concurrent_deliveries_of_one_payment_grant_once(
    operator_settings: Settings, db: Database, user: NewUser
) -> None:
    grant = {"amount": 250, "reference": "pay_concurrent"}
    with serve(create_app(operator_settings, enqueue=RecordedEnqueue())) as server:

        def deliver(_: int) -> int:
            url = server.url + credits_url(user.user_id)
            return httpx.post(url, json=grant, headers=SERVICE, timeout=30).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = sorted(pool.map(deliver, range(8)))
    assert statuses == [200] * 7 + [201]
    assert ledger(db, user.user_id)[-1] == ("grant", 250, "pay_concurrent")
    assert sum(amount for _, amount, _ in ledger(db, user.user_id)) == 260


def test_refunds_never_take_a_balance_below_zero(
    client: TestClient, db: Database, user: NewUser
) -> None:
    url = credits_url(user.user_id)
    refund = client.post(url, json={"amount": -4, "reference": "refund_1"}, headers=SERVICE)
    assert (refund.status_code, refund.json()["balance"]) == (201, 6)
    too_much = client.post(url, json={"amount": -7, "reference": "refund_2"}, headers=SERVICE)
    assert (too_much.status_code, too_much.json()["error"]["code"]) == (409, "conflict")
    assert balance(client, user) == 6
    assert ledger(db, user.user_id)[-1] == ("refund", -4, "refund_1")
    # The refused refund left no trace: its reference may be used once the balance allows.
    client.post(url, json={"amount": 5, "reference": "pay_more"}, headers=SERVICE)
    later = client.post(url, json={"amount": -7, "reference": "refund_2"}, headers=SERVICE)
    assert (later.status_code, later.json()["balance"]) == (201, 4)


def test_bad_grants_are_refused_and_change_nothing(
    client: TestClient, db: Database, user: NewUser
) -> None:
    url = credits_url(user.user_id)
    for body in [
        {"amount": 0, "reference": "zero"},
        {"amount": 5},
        {"amount": 5, "reference": ""},
        {"amount": 5.5, "reference": "float"},
        {"amount": 5, "reference": "x", "extra": 1},
    ]:
        assert client.post(url, json=body, headers=SERVICE).status_code == 400, body
    unknown = credits_url(uuid.uuid4())
    assert (
        client.post(unknown, json={"amount": 5, "reference": "r"}, headers=SERVICE).status_code
        == 404
    )
    assert len(ledger(db, user.user_id)) == 1


def test_an_issued_token_works_and_stops_within_the_documented_delay_once_revoked(
    operator_settings: Settings, client: TestClient, user: NewUser
) -> None:
    issued = client.post(
        f"/api/admin/users/{user.user_id}/tokens", json={"label": "ci"}, headers=SERVICE
    )
    assert issued.status_code == 201, issued.text
    token, token_id = issued.json()["token"], issued.json()["id"]
    # Another web process that has just seen the token valid.
    with TestClient(create_app(operator_settings, enqueue=RecordedEnqueue())) as other:
        assert other.get("/api/me", headers=bearer(token)).status_code == 200
        listed = client.get("/api/tokens", headers=bearer(token)).json()["items"]
        assert [t["id"] for t in listed] == [token_id, user.token_id]
        assert (
            client.delete(f"/api/tokens/{token_id}", headers=bearer(user.token)).status_code == 204
        )
        assert (
            client.get("/api/me", headers=bearer(token)).status_code == 401
        )  # this process: at once
        wait_for(lambda: other.get("/api/me", headers=bearer(token)).status_code == 401, timeout=7)
    assert client.delete(f"/api/tokens/{token_id}", headers=SERVICE).status_code == 404
    assert client.get("/api/me", headers=bearer(user.token)).status_code == 200


def test_a_user_revokes_only_their_own_tokens_and_operators_anyones(
    client: TestClient, db: Database, user: NewUser
) -> None:
    stranger = create_user(db.sessions, "eve")
    path = f"/api/tokens/{stranger.token_id}"
    assert client.delete(path, headers=bearer(user.token)).status_code == 404
    assert client.get("/api/me", headers=bearer(stranger.token)).status_code == 200
    assert client.delete("/api/tokens/0x1", headers=bearer(user.token)).status_code == 400
    assert client.delete(path, headers=SERVICE).status_code == 204
    assert client.get("/api/me", headers=bearer(stranger.token)).status_code == 401


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_token_revoked_elsewhere_is_refused_with_a_second_to_spare_before_5_s(
    operator_settings: Settings, db: Database, user: NewUser
) -> None:
    app = create_app(operator_settings, enqueue=RecordedEnqueue())
    clock = Clock()
    with TestClient(app) as web:
        app.state.authentication.clock = clock
        assert web.get("/api/me", headers=bearer(user.token)).status_code == 200  # remembered
        revoke_token(db.sessions, user.token_id)  # by the CLI or another web process
        revoked_at = clock.now
        # A request that reads the memory a second before the promised 5 s still has that
        # second to be answered; from then on the database is asked, and it says no.
        clock.now = revoked_at + 3.9
        assert web.get("/api/me", headers=bearer(user.token)).status_code == 200
        clock.now = revoked_at + 5.0 - 1.0
        assert web.get("/api/me", headers=bearer(user.token)).status_code == 401
