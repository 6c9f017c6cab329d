"""Fault 7: the client submits and disappears; it never reads the answer nor polls."""

from __future__ import annotations

import json
import socket
import time
from functools import partial
from urllib.parse import urlsplit

import httpx
from sqlalchemy import text

from core.database import Database
from core.users import NewUser
from harness.stack import Stack
from harness.waiting import wait_for
from tests.faults.checks import assert_exact, settle, submit

VANISHING = [150, 40, 1]
ABRUPT = [30, 5]
POLITE = [60, 7]


def send_submit(url: str, token: str, count: int, key: str) -> socket.socket:
    """Open a connection and send POST /api/jobs on it; the answer is never read."""
    address = urlsplit(url)
    body = json.dumps({"count": count}).encode()
    head = (
        f"POST /api/jobs HTTP/1.1\r\nHost: {address.netloc}\r\n"
        f"Authorization: Bearer {token}\r\nIdempotency-Key: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    client = socket.create_connection((address.hostname, address.port), timeout=5)
    client.sendall(head.encode() + body)
    return client


def jobs_by_key(db: Database) -> dict[str, int]:
    """How many jobs each Idempotency-Key has."""
    query = text("SELECT idempotency_key AS key, count(*) AS n FROM jobs GROUP BY 1")
    with db.engine.connect() as connection:
        return {r.key: int(r.n) for r in connection.execute(query)}


def has_job(db: Database, key: str) -> bool:
    """Whether a job with this Idempotency-Key exists."""
    return key in jobs_by_key(db)


def test_jobs_of_a_vanished_client_complete_and_reach_its_stats(
    stack: Stack, db: Database, user: NewUser
) -> None:
    stack.reconcile()
    url = stack.web()
    stack.worker(threads=4, TALLY_SANDBOX_LATENCY_MS="20", TALLY_SANDBOX_FAILURE_RATE="0.1")
    started = time.monotonic()
    for n, count in enumerate(VANISHING):
        # The tab dies once the server has the request: it never reads the answer.
        tab = send_submit(url, user.token, count, f"vanish-{n}")
        wait_for(partial(has_job, db, f"vanish-{n}"), timeout=30)
        tab.close()
    for n, count in enumerate(ABRUPT):
        # The tab dies before the server reads the request: nothing may be half-done, and
        # the client's retry with the same key, whenever it comes, makes exactly one job.
        send_submit(url, user.token, count, f"abrupt-{n}").close()
    assert_every_hold_has_its_job(db)
    for n, count in enumerate(ABRUPT):
        retry = {"Authorization": f"Bearer {user.token}", "Idempotency-Key": f"abrupt-{n}"}
        answer = httpx.post(f"{url}/api/jobs", json={"count": count}, headers=retry)
        assert answer.status_code == 202, answer.text
    submit(url, user.token, POLITE)  # reads its 202, then goes away without polling
    settle(db, started, "client gone after submitting", after="the first submit")

    counted = jobs_by_key(db)
    assert all(counted[f"vanish-{n}"] == 1 for n in range(len(VANISHING)))
    assert all(counted[f"abrupt-{n}"] == 1 for n in range(len(ABRUPT)))
    headers = {"Authorization": f"Bearer {user.token}"}
    stats = httpx.get(f"{url}/api/stats", headers=headers, timeout=10).json()
    with db.engine.connect() as connection:
        sums = connection.execute(
            text("SELECT sum(requested) AS r, sum(successful) AS s, sum(failures) AS f FROM jobs")
        ).one()
    assert stats["requested"] == sum(VANISHING + ABRUPT + POLITE) == sums.r
    assert (stats["successful"], stats["failures"]) == (sums.s, sums.f)
    assert stats["business_centers"] == sums.s
    assert_exact(db, all_successful=False)


def assert_every_hold_has_its_job(db: Database) -> None:
    """Every credit hold belongs to a job, and every job holds its credits."""
    query = text(
        "SELECT (SELECT count(*) FROM jobs) AS jobs, "
        "(SELECT count(*) FROM credit_ledger WHERE kind = 'hold') AS holds"
    )
    with db.engine.connect() as connection:
        row = connection.execute(query).one()
    assert row.jobs == row.holds
