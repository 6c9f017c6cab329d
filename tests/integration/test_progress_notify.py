"""Every change of a job's status or counts is announced to listeners at commit."""

from __future__ import annotations

import select
import uuid
from collections.abc import Iterator

import psycopg2
import psycopg2.extensions
import pytest
from sqlalchemy import make_url

from core import jobs
from core.crypto import SecretBox
from core.database import Database
from core.finish import PROGRESS_CHANNEL, fail_job
from core.settings import Settings
from core.users import create_user
from worker import slices
from worker.fanout import ItemOutcome


@pytest.fixture
def listener(database_url: str) -> Iterator[psycopg2.extensions.connection]:
    url = make_url(database_url).set(drivername="postgresql")
    connection = psycopg2.connect(url.render_as_string(hide_password=False))
    connection.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
    connection.cursor().execute(f"LISTEN {PROGRESS_CHANNEL}")
    yield connection
    connection.close()


def announced(connection: psycopg2.extensions.connection) -> list[str]:
    select.select([connection], [], [], 2.0)
    connection.poll()
    payloads = [n.payload for n in connection.notifies]
    connection.notifies.clear()
    return payloads


def submit(db: Database, settings: Settings, count: int) -> uuid.UUID:
    user = create_user(db.sessions, "watched", credits=100)
    request = jobs.JobRequest(user.user_id, count, "sandbox")
    return jobs.submit(db.sessions, settings, request).job.id


def test_claim_record_and_finish_are_announced(
    db: Database, settings: Settings, listener: psycopg2.extensions.connection
) -> None:
    job_id = submit(db, settings, 2)
    claim = slices.claim(db.sessions, job_id, 0, 30)
    assert claim is not None
    assert announced(listener) == [str(job_id)]  # queued -> running
    outcomes = [ItemOutcome(0, error="refused"), ItemOutcome(1, error="refused")]
    slices.record(db.sessions, claim, outcomes, SecretBox(settings.fernet_key))
    assert str(job_id) in announced(listener)  # counts and completion


def test_a_job_that_cannot_run_is_announced_when_it_fails(
    db: Database, settings: Settings, listener: psycopg2.extensions.connection
) -> None:
    job_id = submit(db, settings, 3)
    assert fail_job(db.sessions, job_id, "provider unavailable") is not None
    assert announced(listener) == [str(job_id)]
