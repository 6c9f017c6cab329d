"""Lists page by cursor: no row lost or repeated while rows arrive; a deep page uses the index."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from core import jobs
from core.database import Database
from core.settings import Settings
from core.users import NewUser, create_user
from tests.support.inline import RecordedEnqueue, process_job
from web.app import create_app

ROWS = 300
PAGE = 17


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, enqueue=RecordedEnqueue())) as test_client:
        yield test_client


def auth(user: NewUser) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}"}


def seed(db: Database, user: uuid.UUID, jobs: int, accounts_per_job: int) -> None:
    """Finished jobs and their vault rows, written in SQL as history would have left them."""
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO jobs (user_id, status, provider, requested, successful, price, "
                "slices_total, slices_done, created_at) "
                "SELECT :u, 'completed', 'sandbox', :n, :n, 1, 1, 1, "
                "now() - n * interval '1 second' FROM generate_series(1, :jobs) n"
            ),
            {"u": user, "n": accounts_per_job, "jobs": jobs},
        )
        connection.execute(
            text(
                "INSERT INTO user_accounts (user_id, job_id, item_index, provider, external_id, "
                "username, secret_encrypted, created_at) "
                "SELECT :u, j.id, i, 'sandbox', 'x' || i, 'u' || i, '\\x00', j.created_at "
                "FROM jobs j, generate_series(0, :n - 1) i WHERE j.user_id = :u"
            ),
            {"u": user, "n": accounts_per_job},
        )


def walk(client: TestClient, user: NewUser, path: str, key: str = "items") -> list[str]:
    """Follow `next` from the first page to the last; return every id served, in order."""
    seen: list[str] = []
    url: str | None = f"{path}?limit={PAGE}"
    while url:
        answer = client.get(url, headers=auth(user))
        assert answer.status_code == 200, answer.text
        seen += [row["id"] for row in answer.json()[key]]
        url = answer.json()["next"]
    return seen


def test_paging_through_a_growing_vault_loses_and_repeats_no_row(
    client: TestClient, db: Database, settings: Settings
) -> None:
    owner = create_user(db.sessions, "pager", credits=10)
    seed(db, owner.user_id, ROWS // 3, 3)
    with db.engine.connect() as connection:
        before = set(
            connection.execute(
                text("SELECT id::text FROM user_accounts WHERE user_id = :u"),
                {"u": owner.user_id},
            ).scalars()
        )
    stop = threading.Event()

    def insert_newer() -> None:  # new accounts (and jobs) land on top while we page
        while not stop.is_set():
            seed_newer(db, owner.user_id)

    writer = threading.Thread(target=insert_newer)
    writer.start()
    try:
        accounts = walk(client, owner, "/api/accounts")
        jobs = walk(client, owner, "/api/jobs")
    finally:
        stop.set()
        writer.join()
    assert len(accounts) == len(set(accounts))  # nothing served twice
    assert before <= set(accounts)  # every row there when paging began was served
    assert len(jobs) == len(set(jobs)) and len(jobs) >= ROWS // 3


def seed_newer(db: Database, user: uuid.UUID) -> None:
    with db.engine.begin() as connection:
        job = connection.execute(
            text(
                "INSERT INTO jobs (user_id, status, provider, requested, successful, price, "
                "slices_total, slices_done) VALUES (:u, 'completed', 'sandbox', 1, 1, 1, 1, 1) "
                "RETURNING id"
            ),
            {"u": user},
        ).scalar_one()
        connection.execute(
            text(
                "INSERT INTO user_accounts (user_id, job_id, item_index, provider, external_id, "
                "username, secret_encrypted) VALUES (:u, :j, 0, 'sandbox', 'n', 'n', '\\x00')"
            ),
            {"u": user, "j": job},
        )


def test_job_and_ledger_totals_are_the_counters_kept_by_the_writes(
    client: TestClient, db: Database, settings: Settings
) -> None:
    owner = create_user(db.sessions, "counted", credits=100)
    other = create_user(db.sessions, "other", credits=100)
    submitted = {
        user.user_id: [
            jobs.submit(db.sessions, settings, jobs.JobRequest(user.user_id, 1, "sandbox")).job
            for _ in range(count)
        ]
        for user, count in ((owner, 40), (other, 5))
    }
    for queued in submitted.values():  # turns run every job, each user's oldest first
        process_job(db, settings, queued[-1].id)
    assert client.get("/api/jobs", headers=auth(owner)).json()["total"] == 40
    assert client.get("/api/jobs", headers=auth(other)).json()["total"] == 5
    # The grant, a hold per job, and a release per finished job.
    assert client.get("/api/credits", headers=auth(owner)).json()["total"] == 1 + 40 + 40
    assert client.get("/api/credits", headers=auth(other)).json()["total"] == 1 + 5 + 5
    assert len(walk(client, owner, "/api/credits", key="entries")) == 81


def test_a_cursor_of_another_user_or_list_or_altered_is_a_400(
    client: TestClient, db: Database
) -> None:
    alice = create_user(db.sessions, "alice", credits=10)
    bob = create_user(db.sessions, "bob", credits=10)
    seed(db, alice.user_id, 5, 1)
    cursor = client.get("/api/jobs?limit=2", headers=auth(alice)).json()["next_cursor"]
    assert cursor
    body, _, tag = cursor.partition(".")
    altered = f"{body[:-2]}{'A' if body[-2] != 'A' else 'B'}{body[-1]}.{tag}"
    for user, url in (
        (bob, f"/api/jobs?cursor={cursor}"),
        (alice, f"/api/accounts?cursor={cursor}"),
        (alice, f"/api/jobs?cursor={altered}"),
    ):
        answer = client.get(url, headers=auth(user))
        assert answer.status_code == 400, url
        assert answer.json()["error"]["field"] == "cursor"
    assert client.get(f"/api/jobs?cursor={cursor}", headers=auth(alice)).status_code == 200


@pytest.mark.parametrize(
    ("table", "where"),
    [
        ("jobs", "user_id = :u"),
        ("user_accounts", "user_id = :u AND deleted_at IS NULL"),
    ],
)
def test_a_deep_page_is_an_index_range_without_a_sort(db: Database, table: str, where: str) -> None:
    heavy = create_user(db.sessions, "heavy", credits=10).user_id
    seed(db, heavy, 2000, 5)
    for i in range(20):
        seed(db, create_user(db.sessions, f"light{i}", credits=10).user_id, 20, 2)
    with db.engine.begin() as connection:
        connection.execute(text(f"ANALYZE {table}"))
        deep = connection.execute(
            text(
                f"SELECT created_at, id FROM {table} WHERE {where} "
                "ORDER BY created_at DESC, id DESC OFFSET 1500 LIMIT 1"
            ),
            {"u": heavy},
        ).one()
        plan = "\n".join(
            connection.execute(
                text(
                    f"EXPLAIN SELECT * FROM {table} WHERE {where} "
                    "AND (created_at, id) < (:c, :i) ORDER BY created_at DESC, id DESC LIMIT 21"
                ),
                {"u": heavy, "c": deep.created_at, "i": deep.id},
            ).scalars()
        )
    assert "Index Scan" in plan and "Sort" not in plan, plan
    assert "Index Cond" in plan and "created_at" in plan.split("Index Cond")[1], plan
