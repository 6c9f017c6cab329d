"""A full run's logs: one JSON object per line, ids attached, no token and no secret."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import httpx
from sqlalchemy import select

from core.crypto import SecretBox
from core.database import Database
from core.logs import ContextFilter, JsonFormatter, log_context
from core.schema import UserAccount
from core.settings import Settings
from core.users import create_user
from harness.stack import Stack

COUNT = 120
DRAMATIQ_TEXT_PREFIX = "["  # the dramatiq CLI's own parent-process lines: "[time] [PID n] ..."


def _run_a_job(url: str, token: str) -> str:
    headers = {"Authorization": f"Bearer {token}"}
    job = httpx.post(f"{url}/api/jobs", json={"count": COUNT}, headers=headers).json()
    status = job
    while status["status"] not in ("completed", "failed"):
        answer = httpx.get(f"{url}/api/job/{job['id']}?wait=20", headers=headers, timeout=30)
        status = answer.json() if answer.status_code == 200 else status
    accounts = httpx.get(f"{url}/api/accounts?limit=3", headers=headers).json()["items"]
    for account in accounts[:2]:
        revealed = httpx.post(f"{url}/api/accounts/{account['id']}/reveal", headers=headers)
        assert revealed.status_code == 200 and revealed.json()["secret"]
    assert (
        httpx.delete(f"{url}/api/accounts/{accounts[2]['id']}", headers=headers).status_code == 204
    )
    wrong = {"Authorization": f"Bearer {token}x"}
    assert httpx.get(f"{url}/api/stats", headers=wrong).status_code == 401
    return str(job["id"])


def _secrets(db: Database, settings: Settings) -> list[str]:
    box = SecretBox(settings.fernet_key)
    with db.sessions() as session:
        sealed = session.scalars(select(UserAccount.secret_encrypted)).all()
    return [box.open(s) for s in sealed]


def _json_lines(text: str, name: str, allow_dramatiq_text: bool) -> list[dict[str, object]]:
    entries = []
    for line in text.splitlines():
        if allow_dramatiq_text and line.startswith(DRAMATIQ_TEXT_PREFIX):
            continue
        try:
            entries.append(json.loads(line))
        except ValueError as exc:
            raise AssertionError(f"{name}: not a JSON line: {line!r}") from exc
    return entries


def test_a_full_run_logs_json_with_ids_and_never_a_token_or_secret(
    process_env: dict[str, str],
    db: Database,
    settings: Settings,
    redis_client: object,
    tmp_path: Path,
) -> None:
    user = create_user(db.sessions, "logged", credits=1000)
    env = {**process_env, "LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"}
    with Stack(env, tmp_path / "logs") as stack:
        url = stack.web(log_level=None)  # as the Procfile runs it: access log on
        stack.worker(threads=2, TALLY_SANDBOX_FAILURE_RATE="0.1")
        stack.reconcile(TALLY_APPLY_INTERVAL="0.2")
        job_id = _run_a_job(url, user.token)
    secrets = _secrets(db, settings)
    assert len(secrets) > COUNT // 2

    logs = {p.name: p.read_text(errors="replace") for p in (tmp_path / "logs").iterdir()}
    everything = "\n".join(logs.values())
    print(f"\n{len(everything.splitlines())} log lines from {sorted(logs)}")
    assert user.token not in everything
    assert user.token.removeprefix("tly_") not in everything
    assert settings.fernet_key not in everything
    leaked = [s for s in secrets if s in everything]
    assert leaked == []

    entries = {
        name: _json_lines(text, name, allow_dramatiq_text=name.startswith("worker"))
        for name, text in logs.items()
    }
    web = next(e for n, e in entries.items() if n.startswith("web"))
    worker = next(e for n, e in entries.items() if n.startswith("worker"))
    assert any(e.get("user_id") == str(user.user_id) for e in web)
    assert any(e.get("job_id") == job_id and e.get("user_id") == str(user.user_id) for e in worker)
    assert all(
        {"time", "level", "logger", "message"} <= set(e) for es in entries.values() for e in es
    )


def test_tokens_are_scrubbed_even_from_exceptions_and_context_ids_are_attached() -> None:
    token = "tly_" + "A1b2C3d4" * 5
    formatter = JsonFormatter()
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "sent %s", (token,), None)
    try:
        raise RuntimeError(f"header was 'Authorization: Bearer {token}'")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    with log_context(job_id="job-1", user_id="user-1"):
        ContextFilter().filter(record)
    entry = json.loads(formatter.format(record))
    assert token not in json.dumps(entry)
    assert entry["message"] == "sent [redacted]"
    assert (entry["job_id"], entry["user_id"]) == ("job-1", "user-1")
