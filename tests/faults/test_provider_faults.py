"""Fault 5: the provider fails, transiently and permanently, at configured rates."""

from __future__ import annotations

import asyncio
import time
import uuid

from sqlalchemy import text

from core.database import Database
from core.errors import PermanentProviderError
from core.providers.base import item_key
from core.providers.sandbox import SandboxProvider
from core.settings import SandboxOptions
from core.users import NewUser
from harness.stack import Stack
from tests.faults.checks import assert_exact, settle, submit

JOBS = 10
ITEMS = 200
FAILURE_RATE = 0.1
TRANSIENT_RATE = 0.4
ATTEMPTS = 3
FAULTS = {
    "TALLY_SANDBOX_FAILURE_RATE": str(FAILURE_RATE),
    "TALLY_SANDBOX_TRANSIENT_RATE": str(TRANSIENT_RATE),
    "TALLY_PROVIDER_ATTEMPTS": str(ATTEMPTS),
    "TALLY_SANDBOX_LATENCY_MS": "10",
}


def refused_for_good(job_ids: list[uuid.UUID]) -> set[tuple[uuid.UUID, int]]:
    """The slots the sandbox refuses permanently (it decides from the key alone)."""
    sandbox = SandboxProvider(SandboxOptions(failure_rate=FAILURE_RATE))

    async def refused(job_id: uuid.UUID, index: int) -> bool:
        try:
            await sandbox.create_account(item_key(job_id, index))
        except PermanentProviderError:
            return True
        return False

    async def all_slots() -> set[tuple[uuid.UUID, int]]:
        slots = [(j, i) for j in job_ids for i in range(ITEMS)]
        verdicts = await asyncio.gather(*(refused(j, i) for j, i in slots))
        return {slot for slot, no in zip(slots, verdicts, strict=True) if no}

    return asyncio.run(all_slots())


def created_slots(db: Database) -> set[tuple[uuid.UUID, int]]:
    """Every (job, item) slot that holds an account."""
    with db.engine.connect() as connection:
        rows = connection.execute(text("SELECT job_id, item_index FROM user_accounts"))
        return {(r.job_id, r.item_index) for r in rows}


def released_per_job(db: Database) -> dict[uuid.UUID, tuple[int, int]]:
    """Per job: credits released by the ledger, and failures times price."""
    query = text(
        "SELECT j.id, coalesce(l.amount, 0) AS released, j.failures * j.price AS owed "
        "FROM jobs j LEFT JOIN credit_ledger l ON l.job_id = j.id AND l.kind = 'release'"
    )
    with db.engine.connect() as connection:
        return {r.id: (int(r.released), int(r.owed)) for r in connection.execute(query)}


def test_provider_faults_are_retried_then_counted_and_refunded(
    stack: Stack, db: Database, user: NewUser
) -> None:
    stack.reconcile()
    url = stack.web()
    stack.worker(threads=4, env=FAULTS)
    started = time.monotonic()
    job_ids = submit(url, user.token, [ITEMS] * JOBS)
    settle(db, started, "provider faults", after="the submit")
    assert_exact(db, all_successful=False)

    refused = refused_for_good(job_ids)
    created = created_slots(db)
    assert not refused & created, "a permanently refused slot holds an account"
    retryable = JOBS * ITEMS - len(refused)
    gave_up = retryable - len(created)
    # A slot fails transiently only when every attempt does: TRANSIENT_RATE ** ATTEMPTS of
    # them (6.4 %), never more than the share that two attempts would leave (16 %).
    print(f"\n[provider] {len(refused)} refused, {gave_up} of {retryable} gave up after retries")
    assert 0 < gave_up < retryable * TRANSIENT_RATE ** (ATTEMPTS - 1)
    assert all(released == owed for released, owed in released_per_job(db).values())
