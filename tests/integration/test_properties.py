"""Any interleaving of submit, slice outcomes, redelivery, cancel, apply and recompute keeps the
invariants.

A Hypothesis state machine drives the real operations against real PostgreSQL and asks the
one invariant checker (reconcile.invariants.check_invariants) after every step.
"""

from __future__ import annotations

import random
import uuid

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text

from core import jobs, vault
from core.cancel import cancel_job, settle_abandoned
from core.credits import grant
from core.crypto import SecretBox
from core.database import Database
from core.errors import Conflict, InsufficientCredits, NotFound
from core.finish import fail_job
from core.providers.base import CreatedAccount, item_key
from core.providers.sandbox import SandboxProvider
from core.settings import SandboxOptions, Settings
from core.transitions import legal_job_move, legal_slice_move
from core.users import create_user
from core.vocabulary import JobStatus, SliceStatus
from harness.outbox import apply_pending
from outbox.apply import apply_batch
from reconcile.invariants import check_invariants
from reconcile.recompute import recompute_business_centers
from reconcile.sweep import take_back_expired
from tests.conftest import TABLES
from tests.support.inline import slice_context
from worker import slices
from worker.fanout import ItemOutcome
from worker.processing import run_turn

USERS = 2
LONG_LEASE = 60.0


def account_for(job_id: uuid.UUID, index: int) -> CreatedAccount:
    """The account a provider returns for one job slot (the same on every call)."""
    key = item_key(job_id, index)
    return CreatedAccount(external_id=f"ext-{key}", username=f"user-{index}", secret=f"s-{key}")


class SlotKeyed:
    """The sandbox keyed by slot alone: outcomes (and so balances) do not depend on the
    random job ids, so Hypothesis sees the same run each time it replays the same steps."""

    def __init__(self, sandbox: SandboxProvider) -> None:
        self._sandbox = sandbox
        self.name = sandbox.name

    async def create_account(self, idempotency_key: str) -> CreatedAccount:
        return await self._sandbox.create_account(idempotency_key.rsplit(":", 1)[1])

    async def aclose(self) -> None:
        await self._sandbox.aclose()


def make_machine(db: Database, base: Settings) -> type[RuleBasedStateMachine]:
    """Build the state machine class over this test's database and settings."""
    config = base.with_changes(slice_size=3, price=2, provider_attempts=2)
    box = SecretBox(config.fernet_key)

    class LedgerAndStats(RuleBasedStateMachine):
        """Jobs, slices, credits, the vault and user_stats under arbitrary interleavings."""

        jobs = Bundle("jobs")

        def __init__(self) -> None:
            super().__init__()
            with db.engine.begin() as connection:
                connection.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
            self.users = [
                create_user(db.sessions, f"user{n}", credits=40).user_id for n in range(USERS)
            ]
            self.claims: list[slices.SliceClaim] = []
            self.job_statuses: dict[uuid.UUID, JobStatus] = {}
            self.slice_statuses: dict[tuple[uuid.UUID, int], SliceStatus] = {}

        @rule(target=jobs, user=st.integers(0, USERS - 1), count=st.integers(1, 10))
        def submit(self, user: int, count: int) -> object:
            request = jobs.JobRequest(self.users[user], count, "sandbox")
            try:
                return jobs.submit(db.sessions, config, request).job.id
            except InsufficientCredits:
                return multiple()

        @rule(user=st.integers(0, USERS - 1), amount=st.integers(1, 30))
        def grant_credits(self, user: int, amount: int) -> None:
            grant(db.sessions, self.users[user], amount)

        @rule(job=jobs, pick=st.integers(0, 3), expired=st.booleans())
        def claim(self, job: uuid.UUID, pick: int, expired: bool) -> None:
            """A delivery takes a slice; an expired lease lets a later delivery take it over."""
            lease = 0.0 if expired else LONG_LEASE
            was_cancelled = _cancel_requested(db, job)
            taken = slices.claim(db.sessions, job, pick % _slice_count(db, job), lease)
            if taken is not None:
                assert not was_cancelled, "a slice of a cancelled job was claimed"
                self.claims.append(taken)

        @precondition(lambda self: bool(self.claims))
        @rule(data=st.data())
        def record(self, data: st.DataObject) -> None:
            """Record a claim's outcomes; recording the same claim again is a redelivery."""
            taken = data.draw(st.sampled_from(self.claims))
            succeeded = data.draw(st.lists(st.booleans(), min_size=3, max_size=3))
            outcomes = [
                ItemOutcome(i, account=account_for(taken.job_id, i))
                if succeeded[n % 3]
                else ItemOutcome(i, error="refused")
                for n, i in enumerate(taken.indices)
            ]
            slices.record(db.sessions, taken, outcomes, box)

        @precondition(lambda self: bool(self.claims))
        @rule(data=st.data())
        def give_back(self, data: st.DataObject) -> None:
            """A delivery that failed gives its slice back (a no-op once it is not its own)."""
            slices.give_back(db.sessions, data.draw(st.sampled_from(self.claims)))

        @precondition(lambda self: bool(self.claims))
        @rule(data=st.data())
        def record_stopped(self, data: st.DataObject) -> None:
            """A slice whose lanes stopped on cancel: only its first items have an outcome."""
            taken = data.draw(st.sampled_from(self.claims))
            if not _cancel_requested(db, taken.job_id):
                return  # lanes stop only once the job's cancel was seen
            attempted = data.draw(st.integers(0, len(taken.indices)))
            outcomes = [
                ItemOutcome(i, account=account_for(taken.job_id, i))
                for i in taken.indices[:attempted]
            ]
            slices.record(db.sessions, taken, outcomes, box)

        @rule(job=jobs)
        def cancel(self, job: uuid.UUID) -> None:
            """The owner cancels, at any step; a finished job refuses, a cancelled one answers."""
            try:
                view = cancel_job(db.sessions, _owner(db, job), job)
            except Conflict:
                return
            assert view.cancel_requested_at is not None

        @rule()
        def settle_cancelled(self) -> None:
            """The sweep settles cancelled jobs' slices no worker runs (expired leases) and
            takes back the others whose lease expired."""
            settle_abandoned(db.sessions)
            take_back_expired(db.sessions)

        @rule(job=jobs, pick=st.integers(0, 3), seed=st.integers(0, 2**16))
        def deliver(self, job: uuid.UUID, pick: int, seed: int) -> None:
            """A whole worker delivery through the sandbox, transient and permanent faults on."""
            options = SandboxOptions(failure_rate=0.3, transient_rate=0.3)

            def provider(name: str, settings: Settings) -> SlotKeyed:
                return SlotKeyed(SandboxProvider(options, random.Random(seed)))

            with slice_context(db, config, providers=provider) as context:
                run_turn(context)

        @rule(job=jobs)
        def job_cannot_run(self, job: uuid.UUID) -> None:
            fail_job(db.sessions, job, "the provider is not configured")

        @rule(limit=st.integers(1, 3))
        def apply(self, limit: int) -> None:
            apply_batch(db.sessions, limit)

        @rule()
        def recompute(self) -> None:
            recompute_business_centers(db.sessions)

        @rule(user=st.integers(0, USERS - 1), pick=st.integers(0, 50))
        def delete_account(self, user: int, pick: int) -> None:
            live = _live_accounts(db, self.users[user])
            if live:
                try:
                    vault.delete_account(db.sessions, self.users[user], live[pick % len(live)])
                except NotFound:
                    raise AssertionError("a live account could not be deleted") from None

        @invariant()
        def only_legal_moves(self) -> None:
            """Every job and slice moved only as core/transitions.py allows since the last step."""
            jobs_now, slices_now = _statuses(db)
            for job_id, status in jobs_now.items():
                before = self.job_statuses.get(job_id, JobStatus.QUEUED)
                assert legal_job_move(before, status), (job_id, before, status)
            for key, now in slices_now.items():
                was = self.slice_statuses.get(key, SliceStatus.PENDING)
                assert legal_slice_move(was, now), (key, was, now)
            self.job_statuses, self.slice_statuses = jobs_now, slices_now

        @invariant()
        def nothing_drifts(self) -> None:
            assert check_invariants(db.sessions) == []

        @invariant()
        def balances_never_negative(self) -> None:
            with db.engine.connect() as connection:
                lowest = connection.execute(text("SELECT min(balance) FROM user_credits"))
                assert (lowest.scalar() or 0) >= 0

        def teardown(self) -> None:
            apply_pending(db.sessions)
            assert check_invariants(db.sessions) == []
            recompute_business_centers(db.sessions)
            assert check_invariants(db.sessions) == []

    return LedgerAndStats


def _statuses(
    db: Database,
) -> tuple[dict[uuid.UUID, JobStatus], dict[tuple[uuid.UUID, int], SliceStatus]]:
    with db.engine.connect() as connection:
        jobs_now = {
            row.id: JobStatus(row.status)
            for row in connection.execute(text("SELECT id, status FROM jobs"))
        }
        slices_now = {
            (row.job_id, row.slice_index): SliceStatus(row.status)
            for row in connection.execute(
                text("SELECT job_id, slice_index, status FROM job_slices")
            )
        }
    return jobs_now, slices_now


def _slice_count(db: Database, job_id: uuid.UUID) -> int:
    with db.engine.connect() as connection:
        total = connection.execute(
            text("SELECT slices_total FROM jobs WHERE id = :id"), {"id": job_id}
        ).scalar_one()
        return int(total)


def _cancel_requested(db: Database, job_id: uuid.UUID) -> bool:
    with db.engine.connect() as connection:
        stamp = connection.execute(
            text("SELECT cancel_requested_at FROM jobs WHERE id = :id"), {"id": job_id}
        ).scalar_one()
        return stamp is not None


def _owner(db: Database, job_id: uuid.UUID) -> uuid.UUID:
    with db.engine.connect() as connection:
        owner = connection.execute(
            text("SELECT user_id FROM jobs WHERE id = :id"), {"id": job_id}
        ).scalar_one()
        return uuid.UUID(str(owner))


def _live_accounts(db: Database, user_id: uuid.UUID) -> list[uuid.UUID]:
    with db.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT id FROM user_accounts WHERE user_id = :u AND deleted_at IS NULL "
                "ORDER BY job_id, item_index"
            ),
            {"u": user_id},
        )
        return [r.id for r in rows]


@pytest.mark.timeout(240)
def test_any_interleaving_keeps_every_invariant(db: Database, settings: Settings) -> None:
    run_state_machine_as_test(
        make_machine(db, settings),
        settings=settings_for_machine(),
    )


def settings_for_machine() -> hypothesis_settings:
    """Enough examples to mix every rule, bounded so the run stays well under a minute."""
    return hypothesis_settings(
        max_examples=40,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
