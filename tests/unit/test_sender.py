"""The web process's slice sender: never blocks a request, drops what the sweep will send."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator

import pytest

from harness.waiting import wait_for
from tests.support.inline import RecordedEnqueue
from web.sender import TurnSender

USER = uuid.uuid4()


class StuckEnqueue(RecordedEnqueue):
    """An enqueue that hangs, as on a Redis that never answers, until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def __call__(self, turns: int) -> int:
        sent = super().__call__(turns)
        self.release.wait(10)
        return sent


@pytest.fixture
def stuck() -> Iterator[StuckEnqueue]:
    enqueue = StuckEnqueue()
    yield enqueue
    enqueue.release.set()


def failing(turns: int) -> int:
    raise ConnectionError("broker down")


def test_an_offered_job_is_sent_in_the_background() -> None:
    enqueue = RecordedEnqueue()
    sender = TurnSender(enqueue, expiry=60)
    sender.start()
    job = uuid.uuid4()
    assert sender.offer(job, USER, 3)
    wait_for(sender.idle, timeout=5)
    assert enqueue.calls == [3]
    sender.stop(timeout=5)


def test_a_full_queue_refuses_at_once_and_warns_once(
    stuck: StuckEnqueue, caplog: pytest.LogCaptureFixture
) -> None:
    sender = TurnSender(stuck, expiry=60, capacity=1)
    sender.start()
    assert sender.offer(uuid.uuid4(), USER, 1)
    wait_for(lambda: stuck.calls, timeout=5)  # the thread is stuck on the first job
    assert sender.offer(uuid.uuid4(), USER, 1)
    refused = [uuid.uuid4(), uuid.uuid4()]
    with caplog.at_level(logging.WARNING, logger="web.sender"):
        assert not any([sender.offer(job, USER, 1) for job in refused])
    assert [r.job_id for r in caplog.records] == [refused[0]]  # type: ignore[attr-defined]
    sender.stop(timeout=0.1)
    assert len(stuck.calls) == 1


def test_a_failed_send_is_logged_with_its_job(caplog: pytest.LogCaptureFixture) -> None:
    sender = TurnSender(failing, expiry=60)
    sender.start()
    job = uuid.uuid4()
    with caplog.at_level(logging.WARNING, logger="web.sender"):
        sender.offer(job, USER, 2)
        wait_for(sender.idle, timeout=5)
    assert [(r.job_id, r.user_id) for r in caplog.records] == [(job, USER)]  # type: ignore[attr-defined]
    assert "could not enqueue" in caplog.records[0].getMessage()
    sender.stop(timeout=5)


def test_a_job_that_waited_longer_than_the_sweep_is_left_to_it() -> None:
    enqueue = RecordedEnqueue()
    sender = TurnSender(enqueue, expiry=-1)
    sender.start()
    sender.offer(uuid.uuid4(), USER, 1)
    wait_for(sender.idle, timeout=5)
    assert enqueue.calls == []
    sender.stop(timeout=5)


def test_stop_drops_the_waiting_jobs_and_does_not_hang_on_the_broker(
    stuck: StuckEnqueue, caplog: pytest.LogCaptureFixture
) -> None:
    sender = TurnSender(stuck, expiry=60)
    sender.start()
    for _ in range(3):
        sender.offer(uuid.uuid4(), USER, 1)
    wait_for(lambda: stuck.calls, timeout=5)
    with caplog.at_level(logging.WARNING, logger="web.sender"):
        sender.stop(timeout=0.1)
    assert "2 jobs not sent at shutdown" in caplog.text
    assert not sender.offer(uuid.uuid4(), USER, 1)
    assert len(stuck.calls) == 1
