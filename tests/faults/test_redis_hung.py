"""Fault 8: Redis accepts connections and never answers while users submit."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from core.database import Database
from core.users import NewUser
from harness.silent_server import SilentServer
from harness.stack import Stack
from harness.waiting import wait_for
from tests.faults.checks import assert_exact, settle

SUBMITS = 45
ITEMS = 20
ENQUEUE_FAILED = "could not enqueue job"


def answered(call: Callable[[], httpx.Response]) -> tuple[int, str]:
    """Status and body of one request."""
    answer = call()
    return answer.status_code, answer.text


def probe(client: httpx.Client) -> list[tuple[int, str]]:
    """Ask /healthz and /api/stats once each."""
    return [answered(lambda: client.get("/healthz")), answered(lambda: client.get("/api/stats"))]


def test_a_hung_redis_holds_up_no_request_and_loses_no_job(
    stack: Stack, db: Database, user: NewUser
) -> None:
    stack.reconcile()  # on the real Redis: its sweep sends what the web could not
    stack.worker(threads=4)
    headers = {"Authorization": f"Bearer {user.token}"}
    limits = httpx.Limits(max_connections=SUBMITS + 8)
    with (
        SilentServer() as hung,
        httpx.Client(
            base_url=stack.web(REDIS_URL=hung.redis_url), headers=headers, timeout=30, limits=limits
        ) as client,
        ThreadPoolExecutor(SUBMITS + 2) as pool,
    ):
        post = lambda: client.post("/api/jobs", json={"count": ITEMS})  # noqa: E731
        submits = [pool.submit(answered, post) for _ in range(SUBMITS)]
        probes = [pool.submit(probe, client) for _ in range(2)]
        answers = [f.result() for f in submits]
        probed = [a for f in probes for a in f.result()]
        wait_for(lambda: hung.accepted > 0, timeout=30)  # the web is waiting on Redis now
        probed += probe(client)

        # Redis never answers, so every answer came without it: none waited on Redis.
        assert [(status, body) for status, body in answers if status != 202] == []
        assert [status for status, _ in probed if status != 200] == []

        settle(db, time.monotonic(), "Redis hung for the web process", after="the submits")
        assert_exact(db, all_successful=True)
        web = stack.children[-1]
        wait_for(lambda: ENQUEUE_FAILED in web.log_text(), timeout=30)
    assert len({json.loads(body)["id"] for _, body in answers}) == SUBMITS
