"""Reference workloads run in separate processes, all starting at the same moment."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

import psycopg2
from psycopg2.extras import execute_values

from core.crypto import SecretBox
from core.providers.base import item_key
from core.providers.sandbox import SandboxProvider
from core.settings import SandboxOptions

START_DELAY = 3.0

VAULT_INSERT = (
    "INSERT INTO user_accounts (user_id, job_id, item_index, provider, external_id, "
    "username, secret_encrypted, metadata) VALUES %s"
)
NAIVE_UPDATE = (
    "UPDATE user_stats SET successful = successful + 1, updated_at = now() WHERE user_id = %s"
)


@dataclass(frozen=True)
class Span:
    """How much work one process did between two wall-clock instants."""

    started: float
    finished: float
    done: int


def rate(spans: Sequence[Span]) -> float:
    """Work per second over the union of the spans."""
    seconds = max(s.finished for s in spans) - min(s.started for s in spans)
    return sum(s.done for s in spans) / seconds if seconds > 0 else 0.0


def run_together(task: Callable[..., Span], arguments: Sequence[tuple[Any, ...]]) -> list[Span]:
    """Run `task(*args, start_at)` in one process per argument tuple, started together."""
    start_at = time.time() + START_DELAY
    with ProcessPoolExecutor(len(arguments), mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(task, *args, start_at) for args in arguments]
        return [f.result() for f in futures]


def _wait_until(instant: float) -> float:
    time.sleep(max(0.0, instant - time.time()))
    return time.time()


async def _accounts(keys: Sequence[str]) -> list[Any]:
    provider = SandboxProvider(SandboxOptions())
    return [await provider.create_account(key) for key in keys]


def vault_rows(
    user_id: uuid.UUID, job_id: uuid.UUID, indices: range, fernet_key: str
) -> list[tuple[Any, ...]]:
    """The vault rows the pipeline stores for these job slots, secrets sealed."""
    box = SecretBox(fernet_key)
    accounts = asyncio.run(_accounts([item_key(job_id, i) for i in indices]))
    return [
        (
            str(user_id),
            str(job_id),
            index,
            "sandbox",
            account.external_id,
            account.username,
            psycopg2.Binary(box.seal(account.secret)),
            json.dumps(account.metadata),
        )
        for index, account in zip(indices, accounts, strict=True)
    ]


def insert_vault_rows(
    url: str,
    jobs: Sequence[tuple[uuid.UUID, uuid.UUID, int]],
    fernet_key: str,
    batch: int,
    start_at: float,
) -> Span:
    """Insert the vault rows of (user, job, size) in committed batches; time only the inserts."""
    prepared = [vault_rows(u, j, range(size), fernet_key) for u, j, size in jobs]
    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            started = _wait_until(start_at)
            for rows in prepared:
                for low in range(0, len(rows), batch):
                    execute_values(cursor, VAULT_INSERT, rows[low : low + batch], page_size=batch)
                    connection.commit()
            return Span(started, time.time(), sum(len(rows) for rows in prepared))
    finally:
        connection.close()


def naive_updates(
    url: str, user_ids: Sequence[uuid.UUID], threads: int, seconds: float, start_at: float
) -> Span:
    """Count one committed `successful + 1` UPDATE per account, from `threads` threads."""
    counts = [0] * threads
    connections = [psycopg2.connect(url) for _ in range(threads)]
    started = _wait_until(start_at)
    stop_at = started + seconds

    def loop(slot: int) -> None:
        connection = connections[slot]
        user = str(user_ids[slot % len(user_ids)])
        with connection.cursor() as cursor:
            while time.time() < stop_at:
                cursor.execute(NAIVE_UPDATE, (user,))
                connection.commit()
                counts[slot] += 1

    workers = [threading.Thread(target=loop, args=(slot,)) for slot in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    finished = time.time()
    for connection in connections:
        connection.close()
    return Span(started, finished, sum(counts))
