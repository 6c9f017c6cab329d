"""Per-user limits on submits: unfinished jobs, submits per minute; web processes agree."""

from __future__ import annotations

import contextlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from core.database import Database
from core.settings import Settings
from core.users import NewUser, create_user
from tests.support.inline import RecordedEnqueue
from tests.support.state import totals
from web.app import create_app

CREDITS = 1_000


@pytest.fixture
def user(db: Database) -> NewUser:
    return create_user(db.sessions, "busy", credits=CREDITS)


def post_job(client: TestClient, user: NewUser, **headers: str) -> httpx2.Response:
    auth = {"Authorization": f"Bearer {user.token}", **headers}
    return client.post("/api/jobs", json={"count": 3}, headers=auth)


def assert_too_many(answer: httpx2.Response, word: str) -> int:
    """A 429 JSON error naming the limit, with Retry-After; returns the seconds."""
    assert answer.status_code == 429, answer.text
    error = answer.json()["error"]
    assert error["code"] == "too_many_requests" and word in error["message"], error
    return int(answer.headers["retry-after"])


def backdate_oldest_job(db: Database, seconds: int) -> None:
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE jobs SET created_at = created_at - make_interval(secs => :s) "
                "WHERE id = (SELECT id FROM jobs ORDER BY created_at LIMIT 1)"
            ),
            {"s": seconds},
        )


def test_unfinished_jobs_beyond_the_limit_answer_429_and_change_nothing(
    settings: Settings, db: Database, user: NewUser
) -> None:
    limited = settings.with_changes(user_max_unfinished_jobs=2, user_submits_per_minute=0)
    with TestClient(create_app(limited, enqueue=RecordedEnqueue())) as client:
        first = post_job(client, user, **{"Idempotency-Key": "a"})
        assert post_job(client, user).status_code == 202
        before = totals(db)
        assert assert_too_many(post_job(client, user), "unfinished") == 5
        assert totals(db) == before
        # A repeated key still answers its job; another user is not held back.
        again = post_job(client, user, **{"Idempotency-Key": "a"})
        assert (again.status_code, again.json()["id"]) == (202, first.json()["id"])
        other = create_user(db.sessions, "idle", credits=CREDITS)
        assert post_job(client, other).status_code == 202
        # A finished (here cancelled) job frees its place.
        cancel = f"/api/job/{first.json()['id']}/cancel"
        auth = {"Authorization": f"Bearer {user.token}"}
        assert client.post(cancel, headers=auth).json()["status"] == "cancelled"
        assert post_job(client, user).status_code == 202


def test_submits_per_minute_hold_across_web_processes_and_concurrent_requests(
    settings: Settings, db: Database, user: NewUser
) -> None:
    limit = 5
    limited = settings.with_changes(user_max_unfinished_jobs=0, user_submits_per_minute=limit)
    with contextlib.ExitStack() as stack:
        # Two apps, each with its own engine and pools, as two web processes have.
        clients = [
            stack.enter_context(TestClient(create_app(limited, enqueue=RecordedEnqueue())))
            for _ in range(2)
        ]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda n: post_job(clients[n % 2], user), range(3 * limit)))
    assert Counter(a.status_code for a in answers) == {202: limit, 429: 2 * limit}
    waits = {assert_too_many(a, "per minute") for a in answers if a.status_code == 429}
    assert all(1 <= seconds <= 60 for seconds in waits), waits
    with db.engine.connect() as connection:
        jobs = connection.execute(text("SELECT count(*) FROM jobs")).scalar_one()
        balance = connection.execute(text("SELECT balance FROM user_credits")).scalar_one()
    assert (jobs, balance) == (limit, CREDITS - 3 * limit)


def test_the_window_frees_a_place_once_its_oldest_job_is_a_minute_old(
    settings: Settings, db: Database, user: NewUser
) -> None:
    limited = settings.with_changes(user_max_unfinished_jobs=0, user_submits_per_minute=2)
    with TestClient(create_app(limited, enqueue=RecordedEnqueue())) as client:
        assert [post_job(client, user).status_code for _ in range(2)] == [202, 202]
        backdate_oldest_job(db, 50)
        assert 5 <= assert_too_many(post_job(client, user), "per minute") <= 10
        backdate_oldest_job(db, 11)  # now older than the minute: its place is free
        assert post_job(client, user).status_code == 202
        assert_too_many(post_job(client, user), "per minute")
