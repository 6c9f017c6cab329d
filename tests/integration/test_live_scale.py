"""Thousands of waiting long-polls cost the web process a handful of database connections."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from core import jobs
from core.database import Database
from core.jobs import JobRequest
from core.settings import Settings
from core.users import NewUser, create_user
from harness.stack import Stack
from harness.waiting import wait_for

POLLS = 2000
USERS = 10
JOBS_PER_USER = 50
WAIT = 60
MAX_WEB_CONNECTIONS = 8

WEB_CONNECTIONS = text(
    "SELECT coalesce(state, '?') AS state, application_name, count(*) AS n "
    "FROM pg_stat_activity WHERE datname = current_database() "
    "AND application_name LIKE 'tally-web%' GROUP BY 1, 2 ORDER BY 2, 1"
)


@pytest.fixture
def web(process_env: dict[str, str], db: Database, tmp_path: Path) -> Iterator[str]:
    with Stack(process_env, tmp_path / "logs") as stack:
        url = stack.web(args=["--backlog", "4096"])
        wait_for(lambda: _ready(url), timeout=30)
        yield url


def _ready(url: str) -> bool:
    try:
        return (
            httpx.get(f"{url}/metrics", timeout=2).text.count("tally_live_listener_connected 1.0")
            == 1
        )
    except httpx.HTTPError:
        return False


def _gauge(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in /metrics")


def _make_jobs(db: Database, settings: Settings) -> list[tuple[NewUser, uuid.UUID]]:
    made = []
    for n in range(USERS):
        user = create_user(db.sessions, f"user{n}", credits=JOBS_PER_USER * 10)
        for _ in range(JOBS_PER_USER):
            request = JobRequest(user_id=user.user_id, count=10, provider="sandbox")
            made.append((user, jobs.submit(db.sessions, settings, request).job.id))
    return made


def _start_all(db: Database, job_ids: list[uuid.UUID]) -> None:
    """Turn every job `running` in one transaction that notifies each job's channel."""
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "WITH started AS (UPDATE jobs SET status = 'running', started_at = now(), "
                "updated_at = now() WHERE id = ANY(:ids) RETURNING id) "
                "SELECT pg_notify('tally_job_progress', id::text) FROM started"
            ),
            {"ids": job_ids},
        )


def _connections(db: Database) -> list[tuple[str, str, int]]:
    with db.engine.connect() as connection:
        return [
            (r.application_name, r.state, int(r.n)) for r in connection.execute(WEB_CONNECTIONS)
        ]


async def _poll_all(
    url: str, targets: list[tuple[NewUser, uuid.UUID]], db: Database
) -> tuple[list[httpx.Response], list[tuple[str, str, int]], float]:
    limits = httpx.Limits(max_connections=POLLS + 100, max_keepalive_connections=POLLS + 100)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=WAIT + 30) as client:
        for user, _ in targets[::JOBS_PER_USER]:  # a dashboard reads something first
            assert (await client.get("/api/stats", headers=_auth(user))).status_code == 200
        polls = [
            asyncio.create_task(client.get(f"/api/job/{job_id}?wait={WAIT}", headers=_auth(user)))
            for user, job_id in (targets[i % len(targets)] for i in range(POLLS))
        ]
        await asyncio.to_thread(
            wait_for, lambda: _gauge(url, "tally_live_waiters") >= POLLS, 60, 0.2
        )
        held = await asyncio.to_thread(_connections, db)
        changed = time.perf_counter()
        await asyncio.to_thread(_start_all, db, [job_id for _, job_id in targets])
        answers = await asyncio.gather(*polls)
        return answers, held, time.perf_counter() - changed


def _auth(user: NewUser) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}"}


def test_two_thousand_long_polls_hold_a_handful_of_connections(
    web: str, db: Database, settings: Settings
) -> None:
    targets = _make_jobs(db, settings)
    answers, held, all_answered = asyncio.run(_poll_all(web, targets, db))
    total = sum(n for _, _, n in held)
    print(f"\n{POLLS} long-polls waiting on {len(targets)} jobs; web connections: {held}")
    print(f"all {POLLS} answered {all_answered * 1000:.0f} ms after the jobs started")
    assert [a.status_code for a in answers] == [200] * POLLS
    assert {a.json()["status"] for a in answers} == {"running"}
    assert ("tally-web-listener", "idle", 1) in held
    assert total <= MAX_WEB_CONNECTIONS
