"""One job's spans form one trace: submit, message, turns, slices, provider calls, finish."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.testclient import TestClient

from core.database import Database
from core.settings import Settings
from core.users import NewUser, create_user
from harness.outbox import apply_pending
from harness.waiting import wait_for
from tests.integration.conftest import WorkerRunner
from tests.support.spans import named, recorded_spans
from tests.support.state import wait_all_terminal
from web.app import create_app


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def user(db: Database) -> NewUser:
    return create_user(db.sessions, "alice", credits=1000)


def attribute(span: ReadableSpan, name: str) -> object:
    return (span.attributes or {}).get(name)


def test_a_jobs_spans_form_one_trace_from_submit_to_finish(
    client: TestClient, db: Database, user: NewUser, run_worker: WorkerRunner
) -> None:
    headers = {"Authorization": f"Bearer {user.token}"}
    with recorded_spans() as exporter, run_worker():
        answer = client.post("/api/jobs", json={"count": 120}, headers=headers)
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]
        wait_all_terminal(db, timeout=60)
        apply_pending(db.sessions)
        # The turn's span ends just after the actor returns.
        spans = wait_for(functools.partial(turns_ended, exporter, 3), timeout=15)
    (submit,) = named(spans, "tally.submit")
    assert submit.context is not None
    trace_id = submit.context.trace_id
    assert attribute(submit, "job.id") == job_id
    assert attribute(submit, "user.id") == str(user.user_id)
    slices = named(spans, "tally.slice")
    assert len(slices) == 3  # 120 items in slices of 50
    for span in [*named(spans, "tally.turn"), *slices]:
        assert span.context is not None and span.context.trace_id == trace_id, span.name
    assert {attribute(s, "job.id") for s in slices} == {job_id}
    assert {attribute(s, "provider") for s in slices} == {"sandbox"}
    # The turn that records a job's last slice finishes it: the event is on that turn.
    turns = named(spans, "tally.turn")
    finished = [e for s in turns for e in s.events if e.name == "job.finished"]
    assert len(finished) == 1
    assert finished[0].attributes is not None
    assert finished[0].attributes["job.successful"] == 120
    (applied,) = named(spans, "tally.apply")
    assert attribute(applied, "rows") == 1
    # The apply is a trace of its own, linked to the span that finished the job.
    assert [link.context.trace_id for link in applied.links] == [trace_id]
    finisher = next(s for s in turns if any(e.name == "job.finished" for e in s.events))
    assert finisher.context is not None
    assert applied.links[0].context.span_id == finisher.context.span_id
    tokens = [user.token, "Bearer"]
    assert not any(t in str(s.to_json()) for s in spans for t in tokens)


def turns_ended(exporter: InMemorySpanExporter, turns: int) -> tuple[ReadableSpan, ...] | None:
    """Every finished span once at least `turns` turn spans have ended (a turn's span ends
    just after its actor returns)."""
    spans = exporter.get_finished_spans()
    return spans if len(named(spans, "tally.turn")) >= turns else None
