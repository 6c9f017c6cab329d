"""Schemathesis against a real server: /openapi.json and the server agree both ways.

No answer is a 5xx, every answer conforms to its operation's description (status, headers,
content type, body), what the description allows is accepted and what it forbids is refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, from_schema
from schemathesis.engine.events import FatalError, NonFatalError, ScenarioFinished
from sqlalchemy import text

from core.database import Database
from core.users import create_user
from harness.stack import DAEMON_STARTED, Stack
from tests.conftest import TABLES, make_settings

EXAMPLES = 60
SEED = 1  # the same cases every run
INTEGER_FIELDS = ("count", "amount", "credits")  # the integers of request bodies


@dataclass(frozen=True)
class Api:
    """A running web process and an admin's token for it."""

    url: str
    token: str


@pytest.fixture(scope="module")
def api(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    tally = make_settings(database_url, redis_url)
    database = Database.from_settings(tally, pool_size=1, application_name="tally-tests")
    with database.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
        # DELETE /api/tokens/<id> must not find the admin's own token among the ids it tries.
        connection.execute(text("ALTER SEQUENCE api_tokens_id_seq RESTART WITH 987654321987654"))
    admin = create_user(database.sessions, "schemathesis", credits=10**6, is_admin=True)
    database.dispose()
    env = {
        **os.environ,
        "DATABASE_URL": tally.database_url,
        "REDIS_URL": tally.redis_url,
        "TALLY_FERNET_KEY": tally.fernet_key,
        "TALLY_AUTH_FAILURES_PER_MINUTE": "1000000",  # schemathesis sends bad tokens on purpose
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "TALLY_MAX_JOB_COUNT": "20",  # the jobs it submits finish at once: streams end
        # Schemathesis sends one bearer token everywhere: the probes accept it too.
        "TALLY_METRICS_TOKEN": admin.token,
    }
    with Stack(env, tmp_path_factory.mktemp("schemathesis-logs")) as stack:
        stack.worker(threads=2)
        daemon = stack.reconcile()  # /readyz is ready only while a daemon beats
        daemon.wait_for_log(DAEMON_STARTED)
        yield Api(stack.web(), admin.token)


def run_schemathesis(api: Api) -> list[str]:
    """Run every phase but the stateful one against the server; one line per failure."""
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "headers": {"Authorization": f"Bearer {api.token}"},
            "request-timeout": 70,
            "generation": {"max-examples": EXAMPLES},
            "phases": {"stateful": {"enabled": False}},
        }
    )
    schema = schemathesis.openapi.from_url(api.url + "/openapi.json", config=config)
    failures: list[str] = []
    for event in from_schema(schema).execute():
        if isinstance(event, ScenarioFinished) and event.status != Status.SUCCESS:
            failures.extend(describe(event))
        elif isinstance(event, NonFatalError):
            failures.append(f"error: {event.label}: {event.value!r}")
        elif isinstance(event, FatalError):
            failures.append(f"fatal: {event.exception!r}")
    return failures


def describe(event: ScenarioFinished) -> list[str]:
    """Each failed check of a scenario, with a command that repeats the request."""
    found = []
    for case_id, checks in event.recorder.checks.items():
        case = event.recorder.cases[case_id].value
        for check in checks:
            info = check.failure_info
            if info is not None and not known_strictness(case, info.failure):
                found.append(f"{event.label}: {info.failure.title}: {info.failure.message}")
                found[-1] += f"\n    {info.code_sample}"
    return found


def known_strictness(case: Any, failure: Any) -> bool:
    """The deliberate disagreements: integers (`count`, ...) must be written as JSON integers,
    an Idempotency-Key already used with another body answers 422 (state no schema states),
    a cursor the server did not sign answers 400 (its signature no schema can state), a
    webhook URL is refused by where its name resolves (DNS, not its shape), and a job's
    export refuses a body that names another job.

    JSON Schema counts 5.0 as an integer; the server refuses it (and 1e2) like a string.
    """
    if failure.title != "Schema-valid request rejected":
        return False
    body = case.body
    if isinstance(body, dict) and any(isinstance(body.get(n), float) for n in INTEGER_FIELDS):
        return True
    headers = {name.lower() for name in (case.headers or {})}
    status = getattr(failure, "status_code", None)
    if status == 400 and "cursor" in (case.query or {}):
        return True  # a cursor of the right shape is valid only when the server signed it
    if status == 400 and isinstance(body, dict) and "cursor" in body:
        return True  # the same, for an export resumed from a cursor
    if status == 400 and case.path == "/api/webhooks":
        return True  # a well-shaped URL whose host resolves where deliveries may not go
    if status == 400 and case.path.endswith("/export") and isinstance(body, dict):
        return "job_id" in body  # the path names the job; a body naming another is refused
    return status == 422 and "idempotency-key" in headers


def test_the_server_and_its_description_agree(api: Api) -> None:
    failures = run_schemathesis(api)
    assert failures == [], "\n".join(dict.fromkeys(failures))
