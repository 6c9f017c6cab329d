"""Counters past 2**31 count exactly; a row that cannot apply is set aside and stops no one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from cli.main import main
from core import jobs, outbox
from core.database import Database
from core.settings import Settings
from core.stats import STAT_NAMES, get_stats
from core.users import create_user
from core.vocabulary import Topic
from harness.outbox import apply_pending
from outbox.backlog import outbox_backlog
from outbox.quarantine import list_quarantined, retry
from reconcile.heartbeat import DaemonIdentity, beat
from reconcile.report import run_report
from tests.support.inline import RecordedEnqueue, process_job
from web.app import create_app

PAST_BIGINT = 2**63  # one more than a BIGINT holds
CAP = 1000  # a CHECK a test puts on user_stats.requested, then lifts (the "fix")


@pytest.fixture(autouse=True)
def operator_env(settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)


@pytest.fixture
def capped(db: Database) -> Iterator[None]:
    """A CHECK that refuses user_stats.requested past CAP, dropped after the test."""
    with db.engine.begin() as connection:
        connection.execute(
            text(f"ALTER TABLE user_stats ADD CONSTRAINT tally_test_cap CHECK (requested < {CAP})")
        )
    yield
    lift_cap(db)


def lift_cap(db: Database) -> None:
    with db.engine.begin() as connection:
        connection.execute(text("ALTER TABLE user_stats DROP CONSTRAINT IF EXISTS tally_test_cap"))


def make_users(db: Database, count: int) -> list[uuid.UUID]:
    return [create_user(db.sessions, f"u{i}", credits=1000).user_id for i in range(count)]


def completed(db: Database, user: uuid.UUID, requested: int, successful: int = 0) -> int:
    """Write an outbox row as a finish does (its figures may be impossible on purpose)."""
    figures = {"requested": requested, "successful": successful, "failures": 0}
    with db.sessions() as session, session.begin():
        assert outbox.add(session, Topic.JOB_COMPLETED, str(uuid.uuid4()), user, figures)
    with db.engine.connect() as connection:
        return int(connection.execute(text("SELECT max(id) FROM outbox")).scalar_one())


def requested(db: Database, user: uuid.UUID) -> int:
    return get_stats(db.sessions, user).counters["requested"]


def backlog(db: Database) -> tuple[int, int]:
    with db.sessions() as session, session.begin():
        found = outbox_backlog(session)
    return found.rows, found.quarantined


def test_counters_are_bigint(db: Database) -> None:
    with db.engine.connect() as connection:
        types: dict[str, str] = dict(
            connection.execute(
                text(
                    "SELECT table_name || '.' || column_name, data_type "
                    "FROM information_schema.columns WHERE table_name IN ('user_stats', 'jobs')"
                )
            ).all()
        )
    widened = [f"user_stats.{n}" for n in STAT_NAMES] + [
        f"jobs.{n}" for n in ("requested", "successful", "failures", "cancelled", "orphans")
    ]
    assert {name: types[name] for name in widened} == dict.fromkeys(widened, "bigint")


def test_a_counter_past_2_31_counts_an_ordinary_job_exactly(
    db: Database, settings: Settings
) -> None:
    owner = create_user(db.sessions, "big", credits=1000)
    user = owner.user_id
    start = 2**31 - 3
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO user_stats (user_id, requested, successful, failures, "
                "business_centers) VALUES (:u, :n, :n, :n, :n)"
            ),
            {"u": user, "n": start},
        )
    job = jobs.submit(db.sessions, settings, jobs.JobRequest(user, 10, "sandbox")).job
    process_job(db, settings, job.id)
    assert apply_pending(db.sessions) == 1
    done = jobs.read_job(db.engine, user, job.id)
    card = get_stats(db.sessions, user).counters
    assert card["requested"] == start + 10 > 2**31
    assert card["successful"] == start + done.successful
    assert card["failures"] == start + done.failures
    assert card["business_centers"] == start + done.successful
    with TestClient(create_app(settings, enqueue=RecordedEnqueue())) as client:
        body = client.get("/api/stats", headers={"Authorization": f"Bearer {owner.token}"})
    assert body.json()["requested"] == start + 10  # a JSON number, not a string


def test_a_row_past_bigint_is_set_aside_while_every_other_row_applies(db: Database) -> None:
    users = make_users(db, 5)
    expected = {user: 0 for user in users}
    poisoned = 0
    for round_ in range(4):
        for user in users:
            completed(db, user, 7)
            expected[user] += 7
            if round_ == 1 and user == users[2]:
                poisoned = completed(db, user, PAST_BIGINT)
    assert apply_pending(db.sessions) == 20
    assert {user: requested(db, user) for user in users} == expected
    assert backlog(db) == (0, 1)
    (row,) = list_quarantined(db.sessions)
    assert row.id == poisoned and row.user_id == users[2]
    assert "out of range" in row.error
    # Later rows of the same user, and of everyone else, go on applying.
    for user in users:
        completed(db, user, 1)
    assert apply_pending(db.sessions) == 5
    assert requested(db, users[2]) == expected[users[2]] + 1
    # Retrying without a fix changes nothing and keeps the row aside.
    again = retry(db.sessions)
    assert (again.applied, again.still_quarantined) == ([], [poisoned])
    assert backlog(db) == (0, 1)


def test_retry_after_the_fix_applies_a_quarantined_row_exactly_once(
    db: Database, settings: Settings, capped: None, capsys: pytest.CaptureFixture[str]
) -> None:
    capper, other = make_users(db, 2)
    first, second = completed(db, capper, 600), completed(db, capper, 600)
    completed(db, other, 5)
    assert apply_pending(db.sessions) == 2  # the batch fails as a whole, then row by row
    assert (requested(db, capper), requested(db, other)) == (600, 5)
    assert backlog(db) == (0, 1)
    assert run_report(db.sessions, repair=False, origin="test").outbox_quarantined == 1
    beat(db.sessions, DaemonIdentity(), is_leader=True)
    with TestClient(create_app(settings, enqueue=RecordedEnqueue())) as client:
        ready = client.get("/readyz")
        assert (ready.status_code, ready.json()["outbox_quarantined"]) == (200, 1)
        assert "tally_outbox_quarantined 1.0" in client.get("/metrics").text

    assert main(["outbox", "list"]) == 0
    listed = capsys.readouterr().out
    assert f"{second}  job.completed  user {capper}" in listed and "tally_test_cap" in listed
    assert main(["outbox", "retry", "--id", str(second)]) == 1  # not fixed yet
    assert "still quarantined: 1" in capsys.readouterr().out

    lift_cap(db)
    assert main(["outbox", "retry", "--id", str(first)]) == 0  # not quarantined: nothing
    assert "applied: 0" in capsys.readouterr().out
    assert main(["outbox", "retry"]) == 0
    assert f"applied: 1 [{second}]" in capsys.readouterr().out
    assert main(["outbox", "retry"]) == 0
    assert "applied: 0" in capsys.readouterr().out
    assert apply_pending(db.sessions) == 0
    assert requested(db, capper) == 1200
    assert backlog(db) == (0, 0)
    assert main(["outbox", "list"]) == 0
    assert "no outbox row is quarantined" in capsys.readouterr().out
