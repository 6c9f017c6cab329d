"""Long-poll and Server-Sent Events answer on the job's change, through LISTEN/NOTIFY."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import text

from core import jobs
from core.crypto import SecretBox
from core.database import Database
from core.jobs import JobRequest
from core.settings import Settings
from core.users import NewUser, create_user
from harness.waiting import wait_for
from tests.support.inline import RecordedEnqueue
from tests.support.live_server import RunningServer, serve
from web.app import create_app
from worker import slices
from worker.fanout import ItemOutcome

WAIT = 20


@pytest.fixture
def server(settings: Settings, db: Database) -> Iterator[RunningServer]:
    with serve(create_app(settings, enqueue=RecordedEnqueue())) as running:
        yield running


@pytest.fixture
def user(db: Database) -> NewUser:
    return create_user(db.sessions, "alice", credits=10_000)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as executor:
        yield executor


def auth(user: NewUser, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}", **headers}


def new_job(db: Database, settings: Settings, user: NewUser, count: int = 100) -> uuid.UUID:
    request = JobRequest(user_id=user.user_id, count=count, provider="sandbox")
    return jobs.submit(db.sessions, settings, request).job.id


def start(db: Database, job_id: uuid.UUID, index: int = 0) -> slices.SliceClaim:
    """Claim a slice: the job turns `running` and a notification goes out."""
    claim = slices.claim(db.sessions, job_id, index, 30)
    assert claim is not None
    return claim


def finish_slice(db: Database, settings: Settings, claim: slices.SliceClaim) -> None:
    """Record a slice whose items all failed: progress moves, a notification goes out."""
    outcomes = [ItemOutcome(i, error="refused") for i in claim.indices]
    slices.record(db.sessions, claim, outcomes, SecretBox(settings.fernet_key))


def waiting(server: RunningServer, count: int = 1) -> None:
    wait_for(lambda: server.app.state.live.hub.watchers >= count, timeout=10, interval=0.01)


def read_once(server: RunningServer, user: NewUser, job_id: uuid.UUID) -> None:
    """Read the job plainly first. Without an ETag, a long poll's baseline is the job as it
    reads it after it starts watching; with the job in the web process's memory, that read
    needs no query, so once the watcher shows the baseline is taken, and a change the test
    makes after that is one the poll must answer."""
    assert httpx.get(f"{server.url}/api/job/{job_id}", headers=auth(user)).status_code == 200


def report_latency(what: str, changed: float, committed: float, answered: float) -> None:
    """Print how long after the change the answer came (a figure, not an assertion)."""
    print(
        f"\n{what} answered {1000 * (answered - changed):.1f} ms after the change began, "
        f"{1000 * max(0.0, answered - committed):.1f} ms after its commit returned"
    )


def timed_get(
    url: str, headers: dict[str, str], timeout: float = WAIT + 10
) -> tuple[httpx.Response, float]:
    answer = httpx.get(url, headers=headers, timeout=timeout)
    return answer, time.perf_counter()


def test_long_poll_answers_when_the_job_starts(
    server: RunningServer,
    db: Database,
    settings: Settings,
    user: NewUser,
    pool: ThreadPoolExecutor,
) -> None:
    job_id = new_job(db, settings, user)
    url = f"{server.url}/api/job/{job_id}"
    first = httpx.get(url, headers=auth(user))
    etag = first.headers["etag"]
    pending: Future[tuple[httpx.Response, float]] = pool.submit(
        timed_get, f"{url}?wait={WAIT}", auth(user, **{"If-None-Match": etag})
    )
    waiting(server)
    changed = time.perf_counter()
    start(db, job_id)
    committed = time.perf_counter()
    answer, answered = pending.result()
    report_latency("long-poll", changed, committed, answered)
    assert answer.status_code == 200
    assert answer.json()["status"] == "running"
    assert answer.headers["etag"] != etag
    assert answer.json().keys() == first.json().keys()


def test_long_poll_without_etag_answers_on_progress(
    server: RunningServer,
    db: Database,
    settings: Settings,
    user: NewUser,
    pool: ThreadPoolExecutor,
) -> None:
    job_id = new_job(db, settings, user)
    claim = start(db, job_id)
    read_once(server, user, job_id)
    pending = pool.submit(timed_get, f"{server.url}/api/job/{job_id}?wait={WAIT}", auth(user))
    waiting(server)
    changed = time.perf_counter()
    finish_slice(db, settings, claim)
    committed = time.perf_counter()
    answer, answered = pending.result()
    report_latency("long-poll", changed, committed, answered)
    assert answer.status_code == 200
    assert answer.json()["failures"] == 50 and answer.json()["progress"] == 0.5


def test_long_poll_ends_with_the_unchanged_status_after_the_wait(
    server: RunningServer, db: Database, settings: Settings, user: NewUser
) -> None:
    job_id = new_job(db, settings, user)
    url = f"{server.url}/api/job/{job_id}?wait=1"
    plain = httpx.get(url, headers=auth(user), timeout=10)
    assert plain.status_code == 200 and plain.json()["status"] == "queued"
    etag = plain.headers["etag"]
    conditional = httpx.get(url, headers=auth(user, **{"If-None-Match": etag}), timeout=10)
    assert conditional.status_code == 304 and conditional.content == b""
    assert conditional.headers["etag"] == etag


def test_long_poll_on_a_stale_etag_or_a_finished_job_answers_at_once(
    server: RunningServer, db: Database, settings: Settings, user: NewUser
) -> None:
    job_id = new_job(db, settings, user, count=50)
    url = f"{server.url}/api/job/{job_id}?wait=60"
    stale = httpx.get(url, headers=auth(user, **{"If-None-Match": '"old"'}), timeout=10)
    assert stale.status_code == 200 and stale.json()["status"] == "queued"
    finish_slice(db, settings, start(db, job_id))
    done = httpx.get(url, headers=auth(user), timeout=10)
    assert done.status_code == 200 and done.json()["status"] == "completed"
    again = httpx.get(
        url, headers=auth(user, **{"If-None-Match": done.headers["etag"]}), timeout=10
    )
    assert again.status_code == 304


def test_long_poll_and_events_keep_other_users_jobs_hidden(
    server: RunningServer, db: Database, settings: Settings, user: NewUser
) -> None:
    job_id = new_job(db, settings, user)
    other = create_user(db.sessions, "mallory", credits=10)
    for path in (f"/api/job/{job_id}?wait=5", f"/api/job/{job_id}/events"):
        answer = httpx.get(server.url + path, headers=auth(other), timeout=10)
        assert answer.status_code == 404, path
        assert answer.json()["error"]["code"] == "not_found"
    assert httpx.get(f"{server.url}/api/job/{job_id}/events", timeout=10).status_code == 401


@pytest.mark.parametrize("wait", ["abc", "61", "-1", "1.5"])
def test_long_poll_rejects_a_bad_wait(
    server: RunningServer, db: Database, settings: Settings, user: NewUser, wait: str
) -> None:
    job_id = new_job(db, settings, user)
    answer = httpx.get(f"{server.url}/api/job/{job_id}?wait={wait}", headers=auth(user))
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "wait"


def read_events(response: httpx.Response) -> Iterator[tuple[str, dict[str, object], float]]:
    """Parse a text/event-stream into (event, data, arrival time)."""
    event, data = "message", ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data += line.removeprefix("data:").strip()
        elif line == "" and data:
            yield event, json.loads(data), time.perf_counter()
            event, data = "message", ""


def test_events_stream_every_change_until_the_job_is_terminal(
    server: RunningServer, db: Database, settings: Settings, user: NewUser
) -> None:
    job_id = new_job(db, settings, user)
    headers = auth(user)
    with httpx.stream(
        "GET", f"{server.url}/api/job/{job_id}/events", headers=headers, timeout=WAIT
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read_events(response)
        event, data, _ = next(events)
        assert (event, data["status"]) == ("status", "queued")
        changed = time.perf_counter()
        claim0 = start(db, job_id, 0)
        committed = time.perf_counter()
        event, data, arrived = next(events)
        report_latency("SSE", changed, committed, arrived)
        assert (event, data["status"], data["progress"]) == ("status", "running", 0.0)
        finish_slice(db, settings, claim0)
        event, data, _ = next(events)
        assert (data["status"], data["progress"]) == ("running", 0.5)
        finish_slice(db, settings, start(db, job_id, 1))
        event, data, _ = next(events)
        assert (event, data["status"], data["progress"]) == ("status", "completed", 1.0)
        event, data, _ = next(events)
        assert event == "end"
        assert list(events) == []


def test_listener_reconnects_after_its_connection_is_cut(
    server: RunningServer,
    db: Database,
    settings: Settings,
    user: NewUser,
    pool: ThreadPoolExecutor,
) -> None:
    listener = server.app.state.live.listener
    connections = listener.connections
    with db.engine.begin() as connection:
        cut = connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'tally-web-listener'"
            )
        ).all()
    assert len(cut) == 1
    wait_for(lambda: listener.connections > connections, timeout=15, interval=0.01)
    assert listener.wait_connected(15)
    job_id = new_job(db, settings, user)
    read_once(server, user, job_id)
    pending = pool.submit(timed_get, f"{server.url}/api/job/{job_id}?wait={WAIT}", auth(user))
    waiting(server)
    start(db, job_id)
    answer, _ = pending.result()
    assert answer.status_code == 200 and answer.json()["status"] == "running"


def test_events_stream_ends_after_a_while_and_resumes_from_last_event_id(
    server: RunningServer,
    db: Database,
    settings: Settings,
    user: NewUser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("web.live.events.STREAM_SECONDS", 0.5)
    job_id = new_job(db, settings, user)
    url = f"{server.url}/api/job/{job_id}/events"
    with httpx.stream("GET", url, headers=auth(user), timeout=WAIT) as response:
        first = response.read().decode()
    assert first.count("event: status") == 1 and "event: end" not in first
    last_id = next(line for line in first.splitlines() if line.startswith("id:"))[3:].strip()
    resumed = auth(user, **{"Last-Event-ID": last_id})
    with httpx.stream("GET", url, headers=resumed, timeout=WAIT) as response:
        assert "event: status" not in response.read().decode()


def test_long_poll_and_events_end_on_cancelled(
    server: RunningServer,
    db: Database,
    settings: Settings,
    user: NewUser,
    pool: ThreadPoolExecutor,
) -> None:
    job_id = new_job(db, settings, user)
    claim = start(db, job_id, 0)  # one slice runs; the other is pending
    url = f"{server.url}/api/job/{job_id}"
    etag = httpx.get(url, headers=auth(user)).headers["etag"]
    with httpx.stream("GET", f"{url}/events", headers=auth(user), timeout=WAIT) as response:
        events = read_events(response)
        assert next(events)[1]["status"] == "running"
        polled = pool.submit(timed_get, f"{url}?wait={WAIT}", auth(user, **{"If-None-Match": etag}))
        waiting(server, 2)
        asked = httpx.post(f"{url}/cancel", headers=auth(user))
        assert asked.status_code == 202 and asked.json()["cancelled"] == 50
        answer, _ = polled.result()
        assert answer.json()["cancel_requested_at"] is not None
        # The running slice stops and records its two items done; the job ends cancelled.
        outcomes = [ItemOutcome(i, error="refused") for i in claim.indices[:2]]
        slices.record(db.sessions, claim, outcomes, SecretBox(settings.fernet_key))
        seen = [(event, data.get("status")) for event, data, _ in events]
    assert seen[-2:] == [("status", "cancelled"), ("end", None)]
    ended = httpx.get(f"{url}?wait={WAIT}", headers=auth(user)).json()
    assert (ended["status"], ended["failures"], ended["cancelled"]) == ("cancelled", 2, 98)
