"""Cancelling jobs against the Procfile's real processes: queued, mid-run, racing completion,
with the worker killed, and with the messages delivered again afterwards.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import text

from core.database import Database
from core.users import NewUser, create_user
from harness.outbox import apply_pending
from harness.stack import WORKER_READY, RedisServer, Stack
from harness.waiting import wait_for
from tests.faults.checks import assert_exact, settle, submit
from tests.faults.test_late_messages import drained, fingerprint, send
from tests.support.brokers import RedisBrokerServer

SLICE_SIZE = 50  # TALLY_SLICE_SIZE of the fault suite
PRICE = 1
LATENCY = {"TALLY_SANDBOX_LATENCY_MS": "50"}
# The big job: 200 slices of 500 items, each process running 4 of them through 8 calls in
# flight of 100 ms, so a slice it is running would take 25 s to finish on its own.
BIG = 100_000
BIG_SLICE = {"TALLY_SLICE_SIZE": "500"}
SLOW_WORKER = {
    "TALLY_SLICE_SIZE": "500",
    "TALLY_PROVIDER_CONCURRENCY": "8",
    "TALLY_SANDBOX_LATENCY_MS": "100",
}
# Well under a running slice's 25 s: only stopped lanes let the job end this soon (the
# watcher polls every 0.5 s; the calls in flight then take 0.1 s).
STOPS_WITHIN = 5.0


@pytest.fixture
def sender(redis_server: RedisServer) -> Iterator[RedisBroker]:
    """A broker on the private Redis, to deliver turn messages again."""
    broker = RedisBroker(url=redis_server.url)  # type: ignore[no-untyped-call]
    try:
        yield broker
    finally:
        broker.close()


def client_for(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def job_row(db: Database, job_id: uuid.UUID) -> Any:
    query = text(
        "SELECT j.status, j.requested, j.successful, j.failures, j.cancelled, "
        "(SELECT count(*) FROM user_accounts a WHERE a.job_id = j.id) AS vault, "
        "(SELECT coalesce(sum(amount), 0) FROM credit_ledger l WHERE l.job_id = j.id) AS net "
        "FROM jobs j WHERE j.id = :id"
    )
    with db.engine.connect() as connection:
        return connection.execute(query, {"id": job_id}).one()


def running_slices(db: Database, job_id: uuid.UUID) -> int:
    query = text("SELECT count(*) FROM job_slices WHERE job_id = :id AND status = 'running'")
    with db.engine.connect() as connection:
        return int(connection.execute(query, {"id": job_id}).scalar_one())


def stopped_mid_slice(db: Database, job_id: uuid.UUID) -> int:
    """Slices that recorded some items and counted the rest as never attempted."""
    query = text(
        "SELECT count(*) FROM job_slices WHERE job_id = :id "
        "AND successful + failures > 0 AND cancelled > 0"
    )
    with db.engine.connect() as connection:
        return int(connection.execute(query, {"id": job_id}).scalar_one())


def stats_of(db: Database, user_id: uuid.UUID) -> dict[str, int]:
    query = text("SELECT requested, successful, failures FROM user_stats WHERE user_id = :u")
    with db.engine.connect() as connection:
        row = connection.execute(query, {"u": user_id}).mappings().one()
        return {k: int(v) for k, v in row.items()}


def status(client: httpx.Client, job_id: uuid.UUID) -> dict[str, Any]:
    answer: dict[str, Any] = client.get(f"/api/job/{job_id}").json()
    return answer


def test_cancel_queued_running_finished_and_redelivered(
    stack: Stack, db: Database, user: NewUser, redis_server: RedisServer, sender: RedisBroker
) -> None:
    stack.reconcile()
    url = stack.web(env=BIG_SLICE)
    client = client_for(url, user.token)
    # Queued: no worker runs yet, so the job is cancelled at once and nothing is charged.
    [queued] = submit(url, user.token, [1_200])
    answer = client.post(f"/api/job/{queued}/cancel")
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["cancelled"]) == ("cancelled", 1_200)
    assert client.post(f"/api/job/{queued}/cancel").json() == answer.json()
    stranger = create_user(db.sessions, "stranger", credits=1)
    assert client_for(url, stranger.token).post(f"/api/job/{queued}/cancel").status_code == 404

    worker = stack.worker(threads=4, processes=2, env=SLOW_WORKER)  # both processes stop
    [small, big] = submit(url, user.token, [10, BIG])
    wait_for(lambda: status(client, small)["status"] == "completed", timeout=30)
    finished = client.post(f"/api/job/{small}/cancel")
    assert finished.status_code == 409 and finished.json()["error"]["code"] == "conflict"

    # Every thread of both processes runs a slice of it (none will record for 25 s).
    wait_for(lambda: running_slices(db, big) == 8, timeout=30)
    asked = time.monotonic()
    answer = client.post(f"/api/job/{big}/cancel")
    assert answer.status_code == 202, answer.text
    assert answer.json()["cancel_requested_at"] is not None
    wait_for(lambda: status(client, big)["status"] == "cancelled", timeout=STOPS_WITHIN)
    took = time.monotonic() - asked
    row = job_row(db, big)
    print(
        f"\n[cancel] {BIG}-item job cancelled {took:.2f} s after the request: "
        f"{row.successful} created, {row.failures} failed, {row.cancelled} never attempted"
    )
    assert row.successful + row.failures + row.cancelled == BIG
    assert 0 < row.cancelled < BIG
    assert stopped_mid_slice(db, big) > 0  # running slices stopped between their items
    assert row.vault == row.successful
    assert row.net == -row.successful * PRICE  # charged exactly what was created
    settle(db, asked, "cancel mid-run", after="the cancel")
    expected = {
        "requested": 1_200 + 10 + BIG,
        "successful": 10 + row.successful,
        "failures": row.failures,
    }
    assert stats_of(db, user.user_id) == expected
    assert_exact(db, all_successful=False)

    # A turn for every slice of every job again: nothing may move.
    before = fingerprint(db)
    send(sender, 3 + BIG // 500)
    wait_for(lambda: drained(RedisBrokerServer(redis_server)), timeout=60)
    assert fingerprint(db) == before
    worker.stop()
    client.close()


def test_cancel_racing_completion_ends_one_way_or_the_other(
    stack: Stack, db: Database, user: NewUser
) -> None:
    stack.reconcile()
    url = stack.web()
    stack.worker(threads=4, TALLY_SANDBOX_LATENCY_MS="20").wait_for_log(WORKER_READY, timeout=60)
    client = client_for(url, user.token)
    seed = random.randrange(2**32)
    print(f"\n[cancel race] random seed {seed}")
    moments = random.Random(seed)
    answers = {}
    for _ in range(12):  # each cancel lands while its job is queued, running or finished
        [job_id] = submit(url, user.token, [SLICE_SIZE * 2])
        time.sleep(moments.uniform(0.0, 0.2))
        answers[job_id] = client.post(f"/api/job/{job_id}/cancel").status_code
    settle(db, time.monotonic(), "cancel racing completion", after="the last cancel")
    endings = Counter((code, job_row(db, job_id).status) for job_id, code in answers.items())
    print(f"[cancel race] answers and endings: {dict(endings)}")
    # 202 then completed: every item was attempted before the cancel could stop one.
    allowed = {(409, "completed"), (200, "cancelled"), (202, "cancelled"), (202, "completed")}
    assert set(endings) <= allowed
    apply_pending(db.sessions)
    assert_exact(db, all_successful=False)
    client.close()


def test_cancel_after_the_worker_died_is_finished_by_the_sweep(
    stack: Stack, db: Database, user: NewUser
) -> None:
    stack.reconcile()
    url = stack.web()
    worker = stack.worker(threads=4, env=LATENCY)
    client = client_for(url, user.token)
    [job_id] = submit(url, user.token, [5_000])
    wait_for(lambda: status(client, job_id)["successful"] > 0, timeout=30)
    worker.kill()  # its running slices keep their lease until it runs out
    asked = time.monotonic()
    assert client.post(f"/api/job/{job_id}/cancel").status_code == 202
    settle(db, asked, "cancel with no worker left", after="the cancel")
    row = job_row(db, job_id)
    assert row.status == "cancelled" and row.cancelled > 0
    assert_exact(db, all_successful=False)
    client.close()
