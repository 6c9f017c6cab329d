"""100,000 accounts exported with secrets by a real web process: flat memory, every secret."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from pathlib import Path

import httpx
import psutil
from sqlalchemy import text

from core.crypto import SecretBox
from core.database import Database
from core.settings import Settings
from core.users import create_user
from harness.stack import Stack

ACCOUNTS = 100_000
RSS_GROWTH_LIMIT = 50 * 1024 * 1024


def sandbox_secret(job_id: uuid.UUID, index: int) -> str:
    """The secret the sandbox provider returns for a job slot (core/providers/sandbox.py)."""
    return hashlib.sha256(f"{job_id}:{index}".encode()).digest()[14:30].hex()


def seed_completed_job(db: Database, settings: Settings, user_id: uuid.UUID) -> uuid.UUID:
    """A completed job whose vault rows hold what the sandbox returned for each slot."""
    box = SecretBox(settings.fernet_key)
    with db.engine.begin() as connection:
        job_id = connection.execute(
            text(
                "INSERT INTO jobs (user_id, provider, requested, successful, price, "
                "slices_total, slices_done, status, finished_at) VALUES "
                "(:u, 'sandbox', :n, :n, 1, 1, 1, 'completed', now()) RETURNING id"
            ),
            {"u": user_id, "n": ACCOUNTS},
        ).scalar_one()
        for start in range(0, ACCOUNTS, 10_000):
            indices = list(range(start, start + 10_000))
            connection.execute(
                text(
                    "INSERT INTO user_accounts (user_id, job_id, item_index, provider, "
                    "external_id, username, secret_encrypted) "
                    "SELECT :u, :j, i, 'sandbox', 'sbx_' || i, 'user_' || i, s "
                    "FROM unnest(CAST(:indices AS int[]), CAST(:secrets AS bytea[])) AS t(i, s)"
                ),
                {
                    "u": user_id,
                    "j": job_id,
                    "indices": indices,
                    "secrets": [box.seal(sandbox_secret(job_id, i)) for i in indices],
                },
            )
    return uuid.UUID(str(job_id))


def test_a_100k_export_streams_with_flat_memory(
    db: Database, settings: Settings, process_env: dict[str, str], tmp_path: Path
) -> None:
    user = create_user(db.sessions, "bulk", credits=0)
    job_id = seed_completed_job(db, settings, user.user_id)
    with Stack(process_env, tmp_path / "logs") as stack:
        url = stack.web()
        web = psutil.Process(stack.children[0].pid)
        headers = {"Authorization": f"Bearer {user.token}"}
        httpx.get(f"{url}/api/job/{job_id}/accounts", headers=headers).raise_for_status()
        baseline = web.memory_info().rss
        peak = baseline
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.wait(0.05):
                peak = max(peak, web.memory_info().rss)

        sampler = threading.Thread(target=sample)
        sampler.start()
        received = 0
        try:
            body = {"format": "ndjson", "include": "secrets"}
            with httpx.stream(
                "POST", f"{url}/api/job/{job_id}/export", json=body, headers=headers, timeout=60
            ) as answer:
                assert answer.status_code == 200
                for line in answer.iter_lines():
                    row = json.loads(line)
                    assert row["item_index"] == received
                    assert row["secret"] == sandbox_secret(job_id, received)
                    received += 1
        finally:
            done.set()
            sampler.join()
    assert received == ACCOUNTS
    growth = peak - baseline
    print(f"web RSS {baseline / 2**20:.1f} MiB, peak growth {growth / 2**20:.1f} MiB")
    assert growth < RSS_GROWTH_LIMIT
