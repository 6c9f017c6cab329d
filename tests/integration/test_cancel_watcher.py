"""The worker's cancel watcher: sees a cancel at its next poll, forgets jobs it stops watching."""

from __future__ import annotations

from core import jobs
from core.cancel import cancel_job
from core.database import Database
from core.settings import Settings
from core.users import create_user
from worker import slices
from worker.cancellation import CancelWatcher


def test_a_cancel_is_seen_at_the_next_poll_by_every_slice_of_the_job(
    db: Database, settings: Settings
) -> None:
    user = create_user(db.sessions, "watched", credits=1000).user_id
    job = jobs.submit(db.sessions, settings, jobs.JobRequest(user, 120, "sandbox")).job
    other = jobs.submit(db.sessions, settings, jobs.JobRequest(user, 10, "sandbox")).job
    for job_id in (job.id, other.id):
        assert slices.claim(db.sessions, job_id, 0, 60) is not None
    watcher = CancelWatcher(db.sessions)  # polled by hand here, not by its thread
    with (
        watcher.watch(job.id) as first,
        watcher.watch(job.id) as second,
        watcher.watch(other.id) as unrelated,
    ):
        watcher.poll()
        assert not (first.is_set() or second.is_set() or unrelated.is_set())
        assert cancel_job(db.sessions, user, job.id).cancel_requested_at is not None
        assert not first.is_set()  # only a poll tells the lanes
        watcher.poll()
        assert first.is_set() and second.is_set() and not unrelated.is_set()
    with watcher.watch(job.id) as later:  # a new watch of a cancelled job learns it too
        watcher.poll()
        assert later.is_set()
    assert watcher.watching() == set()


def test_the_thread_polls_until_closed(db: Database, settings: Settings) -> None:
    user = create_user(db.sessions, "threaded", credits=1000).user_id
    job = jobs.submit(db.sessions, settings, jobs.JobRequest(user, 60, "sandbox")).job
    assert slices.claim(db.sessions, job.id, 0, 60) is not None
    watcher = CancelWatcher(db.sessions, interval=0.05)
    watcher.start()
    try:
        with watcher.watch(job.id) as cancelled:
            cancel_job(db.sessions, user, job.id)
            assert cancelled.wait(timeout=10)
    finally:
        watcher.close()
