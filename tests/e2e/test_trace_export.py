"""Real web and worker processes export OTLP/HTTP; one job's spans form one trace across both."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from core.database import Database
from core.users import create_user
from harness.stack import WORKER_READY, Stack
from harness.waiting import wait_for
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.reference import ReferenceServer

CLIENT = 3  # SpanKind in OTLP's protobuf
TRACING = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_SERVICE_NAME": ""}


def job_trace(spans: list[ReceivedSpan], job_id: str) -> list[ReceivedSpan]:
    """The spans of the trace that the job's submit span began."""
    submits = [s for s in spans if s.name == "tally.submit" and s.attributes["job.id"] == job_id]
    if not submits:
        return []
    return [s for s in spans if s.trace_id == submits[0].trace_id]


def run_job(
    stack: Stack, env: dict[str, str], token: str, count: int, first: Callable[[], object] = str
) -> str:
    """Start web and worker exporting to the receiver, run one job to the end, return its id.

    `first` runs once both are ready, just before the submit.
    """
    web = stack.web(env=env)
    worker = stack.worker(env=env)
    wait_for(lambda: WORKER_READY in worker.tail(), timeout=30)
    first()
    headers = {"Authorization": f"Bearer {token}"}
    answer = httpx.post(f"{web}/api/jobs", json={"count": count}, headers=headers)
    assert answer.status_code == 202, answer.text
    job_id: str = answer.json()["id"]
    status = f"{web}/api/job/{job_id}"
    wait_for(lambda: httpx.get(status, headers=headers).json()["status"] == "completed", 60)
    return job_id


def whole_trace(receiver: OtlpReceiver, job_id: str, turns: int, slices: int) -> list[ReceivedSpan]:
    """The job's trace once its slices and turns have all arrived, each with its parent (the
    worker processes export their batches independently, so a child or a sibling may come
    later than the span that ended after it)."""

    def arrived() -> list[ReceivedSpan] | None:
        spans = job_trace(receiver.received(), job_id)
        ended = len([s for s in spans if s.name == "tally.turn"]) >= turns
        done = len([s for s in spans if s.name == "tally.slice"]) >= slices
        ids = {s.span_id for s in spans}
        sent = [s for s in spans if s.name in ("tally.turn", "tally.slice")]
        closed = all(s.parent_span_id in ids for s in sent)
        return spans if ended and done and closed else None

    spans: list[ReceivedSpan] = wait_for(arrived, timeout=30)
    return spans


def test_one_jobs_spans_form_one_trace_across_the_web_and_the_worker(
    process_env: dict[str, str], tmp_path: Path, db: Database
) -> None:
    user = create_user(db.sessions, "traced", credits=1000)
    with OtlpReceiver() as receiver, Stack({**process_env, **TRACING}, tmp_path) as stack:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
        job_id = run_job(stack, env, user.token, 120)
        spans = whole_trace(receiver, job_id, turns=3, slices=3)
    by_name: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    (submit,) = by_name["tally.submit"]
    assert submit.service == "tally-web"
    assert {s.service for s in by_name["tally.turn"]} == {"tally-worker"}
    # The submit sends the first turn; each turn that claimed work sends the next one.
    turn_ids = {s.span_id for s in by_name["tally.turn"]}
    assert {s.parent_span_id for s in by_name["tally.turn"]} <= turn_ids | {submit.span_id}
    assert submit.span_id in {s.parent_span_id for s in by_name["tally.turn"]}
    assert len(by_name["tally.slice"]) == 3
    assert {s.parent_span_id for s in by_name["tally.slice"]} <= turn_ids
    assert {s.attributes["job.id"] for s in by_name["tally.slice"]} == {job_id}
    assert user.token not in repr(spans)


def test_http_provider_calls_are_client_spans_and_pushback_events_in_the_jobs_trace(
    process_env: dict[str, str], tmp_path: Path, db: Database
) -> None:
    user = create_user(db.sessions, "traced-http", credits=1000)
    with OtlpReceiver() as receiver, Stack({**process_env, **TRACING}, tmp_path) as stack:
        provider = ReferenceServer(stack)
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "TALLY_PROVIDER": "http",
            "TALLY_PROVIDER_URL": provider.url,
        }
        # 503 with Retry-After for the job's first second.
        job_id = run_job(stack, env, user.token, 20, lambda: provider.outage(1.0))
        spans = whole_trace(receiver, job_id, turns=1, slices=1)
    (slice_span,) = [s for s in spans if s.name == "tally.slice"]
    calls = [s for s in spans if s.kind == CLIENT]
    assert len(calls) >= 20  # one per request, retries included
    assert {s.parent_span_id for s in calls} == {slice_span.span_id}
    assert "provider.pushback" in slice_span.events
    assert user.token not in repr(spans)
