"""The reconcile daemon as a real process: its jobs, the leader hand-over, SIGTERM."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import text

from core import jobs
from core.database import Database
from core.settings import Settings
from core.users import create_user
from devstack.processes import Child, kill_all
from harness.stack import Stack
from harness.waiting import wait_for
from reconcile.leader import Leadership
from tests.faults.checks import TURN_MESSAGES
from tests.support.inline import process_job
from tests.support.state import pending_outbox

FAST = {
    "TALLY_APPLY_INTERVAL": "0.2",
    "TALLY_HEARTBEAT_INTERVAL": "0.3",
    "TALLY_LEADER_RETRY_SECONDS": "0.5",
    "TALLY_LEADER_LEASE_SECONDS": "2",
    "TALLY_SWEEP_INTERVAL": "0.5",
    "TALLY_RECOMPUTE_INTERVAL": "0.5",
    "TALLY_REPORT_INTERVAL": "1",
    "TALLY_STALE_ENQUEUE_SECONDS": "1",
}
# How long a heartbeat row counts as fresh in these tests (beats come every 0.3 s).
FRESH_SECONDS = 2.0

StartDaemon = Callable[..., Child]


@pytest.fixture
def start_daemon(
    process_env: dict[str, str], tmp_path: Path, redis_client: redis.Redis[bytes]
) -> Iterator[StartDaemon]:
    """Start `python -m reconcile` processes; every one left running is killed at the end."""
    stack = Stack({**process_env, **FAST}, tmp_path / "logs")
    yield stack.reconcile
    kill_all(stack.children)
    redis_client.flushdb()


def heartbeats(db: Database) -> dict[int, bool]:
    """pid -> is_leader, for every daemon whose heartbeat is fresh."""
    with db.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT pid, is_leader FROM reconcile_heartbeats "
                "WHERE last_seen > now() - make_interval(secs => :fresh)"
            ),
            {"fresh": FRESH_SECONDS},
        ).all()
    return {row.pid: row.is_leader for row in rows}


def fresh_leaders(db: Database) -> list[int]:
    return [pid for pid, leads in heartbeats(db).items() if leads]


def scalar(db: Database, sql: str, **params: object) -> int:
    with db.engine.connect() as connection:
        return int(connection.execute(text(sql), params).scalar() or 0)


def daemon_report(db: Database, where: str) -> dict[str, Any] | None:
    """The newest report the daemon stored that matches a condition."""
    with db.engine.connect() as connection:
        row = (
            connection.execute(
                text(
                    "SELECT * FROM reconcile_reports WHERE origin = 'daemon' "
                    f"AND {where} ORDER BY id DESC LIMIT 1"
                )
            )
            .mappings()
            .first()
        )
    return None if row is None else dict(row)


def live_leases(db: Database) -> int:
    """Leader leases that have not run out (at most one can exist)."""
    return scalar(db, "SELECT count(*) FROM reconcile_leader WHERE expires_at > now()")


def test_another_daemon_takes_over_when_the_leader_is_killed(
    db: Database, start_daemon: StartDaemon
) -> None:
    processes = {p.pid: p for p in (start_daemon(), start_daemon())}
    wait_for(lambda: set(heartbeats(db)) == set(processes) and fresh_leaders(db), timeout=30)
    assert len(fresh_leaders(db)) == 1
    assert live_leases(db) == 1
    leader = fresh_leaders(db)[0]
    (follower,) = set(processes) - {leader}

    os.kill(leader, signal.SIGKILL)
    processes[leader].popen.wait()
    reports_before = scalar(db, "SELECT max(id) FROM reconcile_reports")
    wait_for(lambda: heartbeats(db).get(follower) is True, timeout=30)
    assert processes[follower].running
    # The new leader runs the singleton jobs: a report appears that only it can have made.
    wait_for(lambda: scalar(db, "SELECT max(id) FROM reconcile_reports") > reports_before, 30)


def test_sigterm_stops_the_daemon_cleanly_mid_backlog(
    db: Database, start_daemon: StartDaemon
) -> None:
    user = create_user(db.sessions, "backlog").user_id
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO outbox (topic, key, user_id, payload) "
                "SELECT 'job.completed', 'synthetic-' || n, :user, "
                "jsonb_build_object('requested', 1, 'successful', 1, 'failures', 0) "
                "FROM generate_series(1, 30000) n"
            ),
            {"user": user},
        )
    daemon = start_daemon(TALLY_APPLY_BATCH="200")
    wait_for(lambda: fresh_leaders(db) == [daemon.pid], timeout=30)
    wait_for(lambda: pending_outbox(db) < 30000, timeout=30)

    daemon.terminate()
    assert daemon.popen.wait(timeout=30) == 0
    applied = scalar(db, "SELECT count(*) FROM outbox WHERE applied_at IS NOT NULL")
    counted = scalar(db, "SELECT requested FROM user_stats WHERE user_id = :u", u=user)
    assert applied == counted > 0  # every committed batch counted, no batch half-applied
    assert heartbeats(db) == {}  # the row is removed on a clean stop
    assert live_leases(db) == 0  # given up on the way out, not left to run out


def test_the_daemon_applies_recomputes_sweeps_and_reports(
    db: Database, settings: Settings, start_daemon: StartDaemon
) -> None:
    user = create_user(db.sessions, "owner", credits=500).user_id
    done = jobs.submit(db.sessions, settings, jobs.JobRequest(user, 40, "sandbox")).job
    process_job(db, settings, done.id)
    jobs.submit(db.sessions, settings, jobs.JobRequest(user, 5, "sandbox"))  # its turn is lost
    assert pending_outbox(db) == 1

    start_daemon()
    wait_for(lambda: pending_outbox(db) == 0, timeout=30)
    bc = "SELECT business_centers FROM user_stats WHERE user_id = :u"
    assert scalar(db, bc, u=user) == 40
    with db.engine.begin() as connection:
        connection.execute(
            text("UPDATE user_stats SET business_centers = 7 WHERE user_id = :u"), {"u": user}
        )
    wait_for(lambda: scalar(db, bc, u=user) == 40, timeout=30)

    # The stuck job's user waits and no turn is taken: the sweep sends turns.
    wait_for(lambda: daemon_report(db, "slices_resent >= 1"), timeout=30)
    before = scalar(db, "SELECT max(id) FROM reconcile_reports")
    with db.engine.begin() as connection:
        connection.execute(
            text("UPDATE user_credits SET balance = balance + 3 WHERE user_id = :u"), {"u": user}
        )

    found = wait_for(lambda: daemon_report(db, f"id > {before} AND drift_count > 0"), 30)
    with db.engine.connect() as connection:
        drifts = connection.execute(
            text(
                "SELECT subject_id, field, actual - expected, repaired FROM reconcile_drifts "
                "WHERE report_id = :r"
            ),
            {"r": found["id"]},
        ).all()
    assert [tuple(d) for d in drifts] == [(str(user), "balance", 3, False)]
    assert found["repair"] is False


def test_the_daemon_repairs_when_the_setting_says_so(
    db: Database, start_daemon: StartDaemon
) -> None:
    user = create_user(db.sessions, "owner", credits=50).user_id
    with db.engine.begin() as connection:
        connection.execute(
            text("UPDATE user_credits SET balance = balance - 9 WHERE user_id = :u"), {"u": user}
        )
    start_daemon(TALLY_REPAIR_DRIFT="true")

    found = wait_for(lambda: daemon_report(db, "repaired_count > 0"), timeout=30)
    assert found["drift_count"] == 1 and found["repair"] is True
    assert scalar(db, "SELECT balance FROM user_credits WHERE user_id = :u", u=user) == 50
    # Fixed once: every later report finds nothing left to repair.
    assert scalar(db, "SELECT count(*) FROM reconcile_drifts WHERE repaired") == 1
    wait_for(lambda: daemon_report(db, f"id > {found['id']}"), timeout=30)
    assert scalar(db, "SELECT count(*) FROM reconcile_drifts") == 1


def test_a_leader_that_stops_renewing_loses_the_lease_and_steps_down_when_it_wakes(
    db: Database,
) -> None:
    first = Leadership(db.sessions, uuid.uuid4(), lease_seconds=1.0)
    second = Leadership(db.sessions, uuid.uuid4(), lease_seconds=1.0)
    try:
        assert first.campaign() and not second.campaign()
        for _ in range(3):  # renewing keeps it
            assert first.campaign() and first.confirm() and not second.campaign()
        # `first` is frozen now: it renews no more, and its lease runs out.
        wait_for(second.campaign, timeout=10)
        assert second.confirm() and live_leases(db) == 1
        assert not first.is_leader  # its own clock says the lease is over
        assert not first.confirm() and not first.campaign()  # awake, it finds the lease taken
    finally:
        first.resign()
        second.resign()
    assert live_leases(db) == 0


def test_a_frozen_leader_is_replaced_and_stats_are_applied_throughout(
    db: Database, settings: Settings, start_daemon: StartDaemon, redis_client: redis.Redis[bytes]
) -> None:
    user = create_user(db.sessions, "frozen", credits=1000).user_id
    processes = {p.pid: p for p in (start_daemon(), start_daemon())}
    wait_for(lambda: set(heartbeats(db)) == set(processes) and fresh_leaders(db), timeout=30)
    leader = fresh_leaders(db)[0]
    (follower,) = set(processes) - {leader}
    jobs.submit(db.sessions, settings, jobs.JobRequest(user, 5, "sandbox"))  # no turn sent
    os.kill(leader, signal.SIGSTOP)  # the kernel keeps its connections open
    try:
        add_completions(db, user, 50)
        wait_for(lambda: pending_outbox(db) == 0, timeout=15)  # the follower applies
        wait_for(lambda: fresh_leaders(db) == [follower], timeout=15)  # and takes the lease
        # Only the leader sweeps: the user whose turn was lost gets turns sent again.
        wait_for(lambda: redis_client.hlen(TURN_MESSAGES) > 0, timeout=15)
    finally:
        os.kill(leader, signal.SIGCONT)
    wait_for(lambda: set(heartbeats(db)) == set(processes), timeout=15)
    assert fresh_leaders(db) == [follower]  # the woken one stepped down
    assert scalar(db, "SELECT requested FROM user_stats WHERE user_id = :u", u=user) == 50


def add_completions(db: Database, user: uuid.UUID, rows: int) -> None:
    """Outbox rows as finished jobs write them (one requested item each)."""
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO outbox (topic, key, user_id, payload) "
                "SELECT 'job.completed', 'frozen-' || n, :user, "
                "jsonb_build_object('requested', 1, 'successful', 1, 'failures', 0) "
                "FROM generate_series(1, :rows) n"
            ),
            {"user": user, "rows": rows},
        )
