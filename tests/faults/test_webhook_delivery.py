"""Webhooks: a receiver answering 503 while 50 jobs finish, then SIGKILLed and restarted, still
gets every terminal status, each signed; repeats come only under the same event id."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from core.database import Database
from core.users import NewUser
from core.webhook_signing import verify
from devstack.processes import free_port
from harness.stack import WEBHOOKS_STARTED, Stack
from harness.waiting import wait_for
from tests.faults.checks import settle, submit

JOBS = 50
WEBHOOK_ENV = {
    "TALLY_WEBHOOK_ALLOW_PRIVATE": "true",
    "TALLY_WEBHOOK_BACKOFF": "1",
    "TALLY_WEBHOOK_BACKOFF_MAX": "4",
    "TALLY_WEBHOOK_TIMEOUT": "2",
    "TALLY_WEBHOOK_INTERVAL": "0.2",
}


def received(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line]


def attempts(deliveries: str, headers: dict[str, str]) -> int:
    """Delivery attempts so far, over the endpoint's latest deliveries."""
    page = httpx.get(deliveries, params={"limit": 100}, headers=headers).json()
    return sum(int(d["attempts"]) for d in page["items"])


def delivered_events(log: Path) -> dict[str, dict[str, Any]]:
    return {
        json.loads(r["body"])["id"]: json.loads(r["body"])
        for r in received(log)
        if r["status"] == 200
    }


def test_a_receiver_down_then_killed_gets_every_terminal_status_signed(
    stack: Stack, db: Database, user: NewUser, tmp_path: Path
) -> None:
    port, log, down = free_port(), tmp_path / "received.ndjson", tmp_path / "down"
    down.touch()  # the receiver answers 503 until this file is gone
    receiver_command = [sys.executable, "-m", "tests.support.webhook_receiver"]
    receiver_command += [str(port), str(log), str(down)]
    receiver = stack.start("receiver", receiver_command)
    receiver.wait_for_log("receiver ready", timeout=30)
    stack.reconcile()
    stack.worker(threads=4)
    stack.webhooks(env=WEBHOOK_ENV).wait_for_log(WEBHOOKS_STARTED, timeout=30)
    url = stack.web(env=WEBHOOK_ENV)
    headers = {"Authorization": f"Bearer {user.token}"}
    made = httpx.post(
        f"{url}/api/webhooks", json={"url": f"http://127.0.0.1:{port}/hook"}, headers=headers
    )
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    job_ids = submit(url, user.token, [20] * JOBS)
    settle(db, time.monotonic(), "webhook receiver answering 503")
    wait_for(lambda: any(r["status"] == 503 for r in received(log)), timeout=30)
    assert not any(r["status"] == 200 for r in received(log))
    deliveries = f"{url}/api/webhooks/{made.json()['id']}/deliveries"
    receiver.kill()  # the receiver is gone: attempts now fail to connect
    tried = attempts(deliveries, headers)
    wait_for(lambda: attempts(deliveries, headers) > tried, timeout=60, interval=0.5)
    down.unlink()
    receiver = stack.start("receiver", receiver_command)
    receiver.wait_for_log("receiver ready", timeout=30)
    wanted = {str(j) for j in job_ids}
    wait_for(
        lambda: {e["data"]["job"]["id"] for e in delivered_events(log).values()} >= wanted,
        timeout=120,
        interval=0.5,
    )
    requests = received(log)
    for request in requests:
        assert verify(
            secret, request["headers"]["Tally-Signature"], request["body"].encode(), tolerance=600
        )
        assert request["headers"]["Tally-Event-Id"] == json.loads(request["body"])["id"]
    by_job: dict[str, set[str]] = {}
    for request in requests:
        event = json.loads(request["body"])
        by_job.setdefault(event["data"]["job"]["id"], set()).add(event["id"])
        assert event["type"] == "job.completed"
        assert event["data"]["job"]["status"] == "completed"
    assert all(len(ids) == 1 for ids in by_job.values())
    log_page = httpx.get(deliveries, params={"limit": 100}, headers=headers).json()
    assert {d["status"] for d in log_page["items"]} == {"delivered"}
    assert max(d["attempts"] for d in log_page["items"]) > 1
    print(f"\n[webhooks] {len(requests)} requests for {JOBS} events")
