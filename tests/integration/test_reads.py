"""The lean read path of status polls: no pre-ping, yet a cut connection costs no error."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from core import jobs
from core.database import Database
from core.errors import NotFound
from core.settings import Settings
from core.users import create_user

APP = "tally-test-reader"


@pytest.fixture
def reader_db(db: Database, settings: Settings) -> Iterator[Database]:
    database = Database.from_settings(settings, pool_size=2, application_name=APP)
    yield database
    database.dispose()


def terminate_readers(db: Database) -> int:
    with db.engine.connect() as connection:
        killed = connection.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = :app"
            ),
            {"app": APP},
        ).scalar_one()
    return int(killed)


def test_a_poll_after_its_connection_was_cut_still_answers(
    db: Database, reader_db: Database, settings: Settings
) -> None:
    user = create_user(db.sessions, "poller", credits=10)
    job = jobs.submit(db.sessions, settings, jobs.JobRequest(user.user_id, 3, "sandbox")).job
    assert jobs.read_job(reader_db.reader, user.user_id, job.id) == job
    assert terminate_readers(db) == 1
    assert jobs.read_job(reader_db.reader, user.user_id, job.id) == job


def test_another_users_job_is_not_found(
    db: Database, reader_db: Database, settings: Settings
) -> None:
    owner = create_user(db.sessions, "owner", credits=10)
    job = jobs.submit(db.sessions, settings, jobs.JobRequest(owner.user_id, 3, "sandbox")).job
    with pytest.raises(NotFound):
        jobs.read_job(reader_db.reader, uuid.uuid4(), job.id)
