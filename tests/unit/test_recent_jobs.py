"""Running jobs answered from memory: only until a change for them is announced."""

from __future__ import annotations

import uuid

from tests.unit.test_finished_jobs import job
from web.recent import RecentJobs


def test_a_read_stays_current_until_its_job_changes() -> None:
    recent = RecentJobs()
    running, other = job("running"), job("running")
    recent.remember(recent.stamp(), running)
    recent.remember(recent.stamp(), other)
    recent.changed(other.id)
    assert recent.get(running.user_id, running.id) == running
    assert recent.get(other.user_id, other.id) is None


def test_a_change_announced_while_the_read_ran_makes_it_stale() -> None:
    recent = RecentJobs()
    running = job("running")
    stamp = recent.stamp()  # the read starts ...
    recent.changed(running.id)  # ... a slice commits meanwhile ...
    recent.remember(stamp, running)  # ... and the read may hold the state before it
    assert recent.get(running.user_id, running.id) is None
    recent.remember(recent.stamp(), running)  # a read that starts after the change is fine
    assert recent.get(running.user_id, running.id) == running


def test_only_the_owner_gets_the_read() -> None:
    recent = RecentJobs()
    running = job("running")
    recent.remember(recent.stamp(), running)
    assert recent.get(uuid.uuid4(), running.id) is None


def test_a_reconnected_listener_or_old_age_ends_every_read() -> None:
    recent = RecentJobs()
    running = job("running")
    recent.remember(recent.stamp(), running)
    recent.forget_all()
    assert recent.get(running.user_id, running.id) is None
    aged = RecentJobs(max_age=0.0)
    aged.remember(aged.stamp(), running)
    assert aged.get(running.user_id, running.id) is None
