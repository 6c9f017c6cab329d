"""The frontend's JWTs authenticate beside API tokens: HS256, and RS256/ES256 from a JWKS."""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select
from starlette.testclient import TestClient

from core.database import Database
from core.schema import CreditLedger, User
from core.settings import Settings
from core.users import create_user, provision
from harness.silent_server import SilentServer
from harness.waiting import wait_for
from tests.support.inline import RecordedEnqueue, process_job
from tests.support.jwks import SECRET, JwksServer, SigningKey, claims, hs256
from tests.support.live_server import serve
from web.app import create_app

SIGNUP = 25
ISSUER = "https://sign-in.example/auth/v1"


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {"rsa": SigningKey.rsa("rsa-1"), "ec": SigningKey.ec("ec-1")}


@pytest.fixture
def jwks(keys: dict[str, SigningKey]) -> Iterator[JwksServer]:
    with JwksServer(keys=[keys["rsa"], keys["ec"]]) as server:
        yield server


@pytest.fixture
def jwt_settings(settings: Settings, jwks: JwksServer) -> Settings:
    return settings.with_changes(jwt_secret=SECRET, jwks_url=jwks.url, signup_credits=SIGNUP)


@pytest.fixture
def client(jwt_settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(jwt_settings, enqueue=RecordedEnqueue())) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def users_and_grants(db: Database) -> tuple[int, int]:
    with db.sessions() as session:
        users = session.scalar(select(func.count()).select_from(User))
        grants = session.scalar(select(func.count()).select_from(CreditLedger))
    return int(users or 0), int(grants or 0)


def test_a_jwt_of_a_new_user_submits_polls_and_reads_stats_with_no_operator_step(
    client: TestClient, db: Database, jwt_settings: Settings
) -> None:
    sub = str(uuid.uuid4())
    token = hs256(sub, email="ana@example.com")
    me = client.get("/api/me", headers=bearer(token))
    assert me.status_code == 200, me.text
    assert me.json() == {"user_id": sub, "name": "ana@example.com", "is_admin": False}
    assert client.get("/api/credits", headers=bearer(token)).json()["balance"] == SIGNUP
    submitted = client.post("/api/jobs", json={"count": 4}, headers=bearer(hs256(sub)))
    assert submitted.status_code == 202, submitted.text
    process_job(db, jwt_settings, uuid.UUID(submitted.json()["id"]))
    polled = client.get(submitted.headers["location"], headers=bearer(hs256(sub)))
    assert (polled.json()["status"], polled.json()["successful"]) == ("completed", 4)
    stats = client.get("/api/stats", headers=bearer(hs256(sub)))
    assert stats.json()["user_id"] == sub
    # Provisioned once: one user, one signup grant, whatever the number of JWTs.
    with db.sessions() as session:
        grants = session.scalars(select(CreditLedger.kind).where(CreditLedger.kind == "grant"))
        assert list(grants) == ["grant"]


def test_api_tokens_keep_working_beside_jwts(client: TestClient, db: Database) -> None:
    user = create_user(db.sessions, "script", credits=3)
    assert client.get("/api/me", headers=bearer(user.token)).json()["name"] == "script"


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_asymmetric_jwts_are_checked_with_the_jwks_keys(
    client: TestClient, keys: dict[str, SigningKey], kind: str
) -> None:
    sub = str(uuid.uuid4())
    answer = client.get("/api/me", headers=bearer(keys[kind].sign(claims(sub))))
    assert answer.status_code == 200, answer.text
    assert answer.json()["user_id"] == sub


def forged(keys: dict[str, SigningKey]) -> dict[str, str]:
    """JWTs that must all be refused, by what is wrong with them."""
    now = int(time.time())
    stranger = SigningKey.rsa("rsa-1")  # the published key id, another key
    public_pem = (
        keys["rsa"]
        .private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    no_sub = claims()
    del no_sub["sub"]
    return {
        "alg none": jwt.encode(claims(), "", "none"),
        "HS512 with the secret": jwt.encode(claims(), SECRET * 2, "HS512"),
        "another secret": hs256(secret="another-secret-of-at-least-32-characters!!"),
        "RS256 signed by another key": stranger.sign(claims()),
        "unknown kid": SigningKey("nobody", "RS256", stranger.private).sign(claims()),
        "HS256 keyed with the public key": hmac_signed(claims(), public_pem, kid="rsa-1"),
        "wrong audience": hs256(aud="anon"),
        "no audience": hs256(aud=None),
        "expired": hs256(exp=now - 60),
        "no exp": hs256(exp=None),
        "not yet valid": hs256(nbf=now + 60),
        "no sub": jwt.encode(no_sub, SECRET, "HS256"),
        "sub not a uuid": hs256(sub="ana"),
        "sub in upper case": hs256(sub=str(uuid.uuid4()).upper()),
        "garbage": "eyJ.not.ajwt",
    }


def hmac_signed(payload: dict[str, object], key: bytes, kid: str) -> str:
    """An HS256 JWT keyed with any bytes (PyJWT refuses PEM keys as HMAC secrets)."""
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    parts = [base64url(json.dumps(part).encode()) for part in (header, payload)]
    signature = hmac.new(key, ".".join(parts).encode(), hashlib.sha256).digest()
    return ".".join([*parts, base64url(signature)])


def base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_every_forged_or_unfit_jwt_answers_401_json_and_creates_nobody(
    client: TestClient, db: Database, keys: dict[str, SigningKey]
) -> None:
    before = users_and_grants(db)
    for what, token in forged(keys).items():
        answer = client.get("/api/me", headers=bearer(token))
        assert answer.status_code == 401, (what, answer.text)
        assert answer.json()["error"]["code"] == "unauthorized", what
    assert users_and_grants(db) == before


def test_the_issuer_is_checked_when_configured(jwt_settings: Settings, db: Database) -> None:
    app = create_app(jwt_settings.with_changes(jwt_issuer=ISSUER), enqueue=RecordedEnqueue())
    with TestClient(app) as client:
        assert client.get("/api/me", headers=bearer(hs256(iss=ISSUER))).status_code == 200
        assert client.get("/api/me", headers=bearer(hs256(iss="https://evil"))).status_code == 401
        assert client.get("/api/me", headers=bearer(hs256())).status_code == 401


def test_failed_jwts_count_toward_the_failed_authentication_limit(
    jwt_settings: Settings, db: Database
) -> None:
    app = create_app(
        jwt_settings.with_changes(auth_failures_per_minute=3), enqueue=RecordedEnqueue()
    )
    with TestClient(app) as client:
        bad = [hs256(secret="x" * 40) for _ in range(3)]
        assert [client.get("/api/me", headers=bearer(t)).status_code for t in bad] == [401] * 3
        refused = client.get("/api/me", headers=bearer(hs256(exp=1)))
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "too_many_requests"


def test_a_rotated_key_is_fetched_on_its_unknown_kid_and_the_old_one_stops(
    client: TestClient, jwks: JwksServer, keys: dict[str, SigningKey]
) -> None:
    assert client.get("/api/me", headers=bearer(keys["rsa"].sign(claims()))).status_code == 200
    fetched = jwks.fetches
    rotated = SigningKey.rsa("rsa-2")
    jwks.keys = [rotated]
    sub = str(uuid.uuid4())
    # Refetched on the new kid (at most once a second), then accepted.
    wait_for(
        lambda: client.get("/api/me", headers=bearer(rotated.sign(claims(sub)))).status_code == 200,
        timeout=10,
    )
    assert jwks.fetches > fetched
    assert client.get("/api/me", headers=bearer(keys["rsa"].sign(claims()))).status_code == 401
    # Made-up key ids cannot make tally hammer the JWKS endpoint.
    fetched = jwks.fetches
    for n in range(30):
        token = SigningKey(f"made-up-{n}", "RS256", rotated.private).sign(claims())
        assert client.get("/api/me", headers=bearer(token)).status_code == 401
    assert jwks.fetches - fetched <= 3


def test_concurrent_first_requests_of_a_new_sub_provision_it_once(
    jwt_settings: Settings, db: Database
) -> None:
    sub = str(uuid.uuid4())
    tokens = [hs256(sub) for _ in range(16)]  # each its own JWT: no shared lookup
    with serve(create_app(jwt_settings, enqueue=RecordedEnqueue())) as server:

        def me(token: str) -> int:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                return http.get("/api/me", headers=bearer(token)).status_code

        with concurrent.futures.ThreadPoolExecutor(len(tokens)) as pool:
            assert list(pool.map(me, tokens)) == [200] * len(tokens)
    with db.sessions() as session:
        ledger = session.execute(
            select(CreditLedger.kind, CreditLedger.amount).where(
                CreditLedger.user_id == uuid.UUID(sub)
            )
        ).all()
        assert [tuple(row) for row in ledger] == [("grant", SIGNUP)]
        assert session.scalar(select(func.count()).select_from(User)) == 1


def test_a_hung_jwks_costs_its_requests_a_bounded_wait_and_nobody_else_anything(
    settings: Settings, db: Database, keys: dict[str, SigningKey]
) -> None:
    user = create_user(db.sessions, "script")
    with SilentServer() as silent:
        hung = settings.with_changes(jwks_url=f"http://127.0.0.1:{silent.port}/jwks.json")
        with serve(create_app(hung, enqueue=RecordedEnqueue())) as server:
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                waiting = [
                    pool.submit(
                        httpx.get,
                        server.url + "/api/me",
                        headers=bearer(keys["rsa"].sign(claims())),
                        timeout=30,
                    )
                    for _ in range(3)
                ]
                wait_for(lambda: silent.accepted >= 1, timeout=10)
                # While the fetch hangs, the event loop serves everyone else.
                token_user = httpx.get(
                    server.url + "/api/me", headers=bearer(user.token), timeout=2
                )
                assert token_user.status_code == 200
                answers = [f.result() for f in waiting]
            assert {a.status_code for a in answers} == {503}
            assert all(a.json()["error"]["code"] == "unavailable" for a in answers)
            assert silent.accepted == 1  # the three shared one fetch


def test_a_signed_email_claim_postgresql_cannot_store_still_provisions_the_user(
    client: TestClient,
) -> None:
    answer = client.get("/api/me", headers=bearer(hs256(email="ana\x00@example.com" + "x" * 300)))
    assert answer.status_code == 200, answer.text
    assert answer.json()["name"].startswith("ana@example.com")
    assert len(answer.json()["name"]) == 200


def test_provisioning_the_same_user_from_many_threads_at_once_creates_one(db: Database) -> None:
    user_id = uuid.uuid4()
    start = threading.Barrier(8)

    def first_request(_: int) -> uuid.UUID:
        start.wait()
        return provision(db.sessions, user_id, "", signup_credits=SIGNUP).user_id

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert set(pool.map(first_request, range(8))) == {user_id}
    with db.sessions() as session:
        amounts = session.scalars(
            select(CreditLedger.amount).where(CreditLedger.user_id == user_id)
        ).all()
    assert amounts == [SIGNUP]
