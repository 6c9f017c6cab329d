"""The gauges alerts watch: the reconcile daemons' lease and heartbeat, the stalest job."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from core.database import Database
from core.jobs import JobRequest, submit
from core.settings import Settings
from core.users import create_user
from reconcile.heartbeat import DaemonIdentity, beat
from reconcile.leader import Leadership
from web.daemon_metrics import NEVER_SECONDS, DaemonCollector


def gauges(db: Database) -> dict[str, float]:
    return {
        family.name: family.samples[0].value for family in DaemonCollector(db.sessions).collect()
    }


def test_without_daemons_there_is_no_leader_and_the_heartbeat_is_old(db: Database) -> None:
    assert gauges(db) == {
        "tally_reconcile_leader": 0.0,
        "tally_reconcile_heartbeat_age_seconds": NEVER_SECONDS,
        "tally_jobs_stalest_unfinished_seconds": 0.0,
    }


def test_a_leader_and_its_heartbeat_are_seen(db: Database) -> None:
    leadership = Leadership(db.sessions, uuid.uuid4(), lease_seconds=10)
    assert leadership.campaign()
    beat(db.sessions, DaemonIdentity(), is_leader=True)
    seen = gauges(db)
    assert seen["tally_reconcile_leader"] == 1.0
    assert 0 <= seen["tally_reconcile_heartbeat_age_seconds"] < 5
    leadership.resign()
    assert gauges(db)["tally_reconcile_leader"] == 0.0


def test_the_stalest_unfinished_job_is_measured_from_its_last_change(
    db: Database, settings: Settings
) -> None:
    user = create_user(db.sessions, "alice", credits=100)
    job = submit(
        db.sessions, settings, JobRequest(user_id=user.user_id, count=3, provider="sandbox")
    ).job
    with db.engine.begin() as connection:
        connection.execute(
            text("UPDATE jobs SET updated_at = now() - interval '1 hour' WHERE id = :id"),
            {"id": job.id},
        )
    assert 3600 <= gauges(db)["tally_jobs_stalest_unfinished_seconds"] < 3700
