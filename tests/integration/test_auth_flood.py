"""A flood of bad tokens from many clients is refused with 429; a real user is always answered."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from core.database import Database
from core.users import NewUser, create_user
from harness.auth_flood import Flood
from harness.stack import Stack
from harness.waiting import wait_for

LIMIT = 20  # the default TALLY_AUTH_FAILURES_PER_MINUTE
CLIENTS = 16
POLLS = 80


@pytest.fixture
def web_url(process_env: dict[str, str], db: Database, tmp_path: Path) -> Iterator[str]:
    stack = Stack(process_env, tmp_path / "logs")
    try:
        yield stack.web()
    finally:
        stack.stop_all()


@pytest.fixture
def user(db: Database) -> NewUser:
    return create_user(db.sessions, "real", credits=10)


def poll(client: httpx.Client, user: NewUser, until: Callable[[], bool] = lambda: True) -> int:
    """Poll /api/stats as the real user, POLLS times and until `until`; each must answer 200."""
    polls = 0
    while polls < POLLS or not until():
        answer = client.get("/api/stats", headers={"Authorization": f"Bearer {user.token}"})
        assert answer.status_code == 200, answer.text
        polls += 1
    return polls


def test_a_token_flood_is_refused_and_a_real_user_is_always_answered(
    web_url: str, user: NewUser
) -> None:
    flood = Flood(web_url, [f"127.0.0.{10 + n}" for n in range(CLIENTS)])
    with httpx.Client(base_url=web_url, timeout=30) as client:
        flood.start()
        try:
            # From the first bad token until every client has been refused a few times.
            poll(client, user, lambda: flood.refused >= 3 * CLIENTS)
        finally:
            answered = flood.finish()
    for address, statuses in answered.items():
        assert len(statuses) > LIMIT, address
        assert statuses[:LIMIT] == [401] * LIMIT, address
        assert set(statuses[LIMIT:]) == {429}, address


def test_a_flood_from_a_real_users_address_never_locks_the_real_user_out(
    web_url: str, db: Database, user: NewUser
) -> None:
    """Bad tokens from the address a real user shares: only the bad ones are refused."""
    flood = Flood(web_url, ["127.0.0.1", "127.0.0.1"])  # two connections, the user's address
    with httpx.Client(base_url=web_url, timeout=30) as client:
        flood.start()
        try:
            wait_for(lambda: flood.refused >= 3, timeout=60)  # the address is over its limit
            poll(client, user)  # every poll of a known token answers 200
            newcomer = create_user(db.sessions, "newcomer", credits=1)  # a token never seen
            auth = {"Authorization": f"Bearer {newcomer.token}"}
            assert client.get("/api/stats", headers=auth).status_code == 200
            wrong = {"Authorization": "Bearer tly_" + "x" * 43}
            assert client.get("/api/stats", headers=wrong).status_code == 429  # still limited
        finally:
            answered = flood.finish()
    statuses = [status for found in answered.values() for status in found]
    assert set(statuses) == {401, 429}
