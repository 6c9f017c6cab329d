"""Real web and worker processes export OTLP/HTTP; one job's spans form one trace across both."""

from __future__ import annotations

from pathlib import Path

import httpx

from core.database import Database
from core.users import create_user
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.stack import WORKER_READY, Stack
from tests.support.waiting import wait_for

TRACING = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_SERVICE_NAME": ""}


def job_trace(spans: list[ReceivedSpan], job_id: str) -> list[ReceivedSpan]:
    """The spans of the trace that the job's submit span began."""
    submits = [s for s in spans if s.name == "tally.submit" and s.attributes["job.id"] == job_id]
    if not submits:
        return []
    return [s for s in spans if s.trace_id == submits[0].trace_id]


def test_one_jobs_spans_form_one_trace_across_the_web_and_the_worker(
    process_env: dict[str, str], tmp_path: Path, db: Database
) -> None:
    user = create_user(db.sessions, "traced", credits=1000)
    with OtlpReceiver() as receiver, Stack({**process_env, **TRACING}, tmp_path) as stack:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
        web = stack.web(**env)
        worker = stack.worker(**env)
        wait_for(lambda: WORKER_READY in worker.tail(), timeout=30)
        headers = {"Authorization": f"Bearer {user.token}"}
        answer = httpx.post(f"{web}/api/jobs", json={"count": 120}, headers=headers)
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]
        status = f"{web}/api/job/{job_id}"
        wait_for(lambda: httpx.get(status, headers=headers).json()["status"] == "completed", 60)

        def whole_trace() -> list[ReceivedSpan] | None:
            spans = job_trace(receiver.received(), job_id)
            finished = (
                any(s.name == "tally.slice" for s in spans)
                and len([s for s in spans if s.name == "tally.turn"]) >= 3
            )
            return spans if finished else None

        spans = wait_for(whole_trace, timeout=30)
    by_name: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    (submit,) = by_name["tally.submit"]
    assert submit.service == "tally-web"
    assert {s.service for s in by_name["tally.turn"]} == {"tally-worker"}
    assert {s.parent_span_id for s in by_name["tally.turn"]} == {submit.span_id}
    turn_ids = {s.span_id for s in by_name["tally.turn"]}
    assert len(by_name["tally.slice"]) == 3
    assert {s.parent_span_id for s in by_name["tally.slice"]} <= turn_ids
    assert {s.attributes["job.id"] for s in by_name["tally.slice"]} == {job_id}
    assert len(by_name["tally.provider_call"]) == 120
    assert user.token not in repr(spans)
