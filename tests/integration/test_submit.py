"""core.jobs.submit: slices, the credit hold, and races between submits."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import TypeVar

import pytest
from sqlalchemy import text

from core import jobs
from core.database import Database
from core.errors import InsufficientCredits, InvalidInput, UnknownProvider
from core.job_list import list_jobs
from core.jobs import JobRequest, Submission
from core.settings import Settings
from core.users import create_user
from tests.support.state import assert_invariants, totals

T = TypeVar("T")


def in_threads(count: int, action: Callable[[int], T]) -> list[T | BaseException]:
    """Run `action(i)` in `count` threads released at once; return results or errors."""
    barrier = threading.Barrier(count)
    results: list[T | BaseException] = [RuntimeError("not run")] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = action(i)
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def slices_of(db: Database, job: Submission) -> list[tuple[int, int, int, str]]:
    with db.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT slice_index, start_index, stop_index, status FROM job_slices "
                "WHERE job_id = :j ORDER BY slice_index"
            ),
            {"j": job.job.id},
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


@pytest.mark.parametrize(("count", "size"), [(1, 50), (50, 50), (51, 50), (1234, 100), (7, 3)])
def test_slices_cover_every_slot_once(
    db: Database, settings: Settings, count: int, size: int
) -> None:
    settings = settings.with_changes(slice_size=size)
    user = create_user(db.sessions, "alice", credits=count)
    submission = jobs.submit(db.sessions, settings, JobRequest(user.user_id, count, "sandbox"))
    found = slices_of(db, submission)
    assert submission.created and submission.job.slices_total == len(found)
    assert [s[0] for s in found] == list(range(len(found)))
    assert found[0][1] == 0 and found[-1][2] == count
    assert all(a[2] == b[1] for a, b in itertools.pairwise(found))
    assert all(0 < stop - start <= size for _, start, stop, _ in found)
    assert {s[3] for s in found} == {"pending"}


@pytest.mark.parametrize("price", [0, 1, 3])
def test_submit_holds_count_times_price(db: Database, settings: Settings, price: int) -> None:
    settings = settings.with_changes(price=price)
    user = create_user(db.sessions, "alice", credits=100)
    submission = jobs.submit(db.sessions, settings, JobRequest(user.user_id, 20, "sandbox"))
    assert submission.job.status == "queued"
    with db.engine.connect() as connection:
        balance = connection.execute(
            text("SELECT balance FROM user_credits WHERE user_id = :u"), {"u": user.user_id}
        ).scalar_one()
        hold = connection.execute(
            text("SELECT amount FROM credit_ledger WHERE job_id = :j AND kind = 'hold'"),
            {"j": submission.job.id},
        ).scalar_one()
    assert (balance, hold) == (100 - 20 * price, -20 * price)
    assert_invariants(db)


@pytest.mark.parametrize(
    ("request_changes", "error"),
    [
        ({"count": 0}, InvalidInput),
        ({"count": 1001}, InvalidInput),
        ({"provider": "nope"}, UnknownProvider),
        ({"provider": "http"}, UnknownProvider),  # exists, but this deployment offers sandbox
        ({"idempotency_key": ""}, InvalidInput),
        ({"idempotency_key": "x" * 201}, InvalidInput),
        ({"count": 101}, InsufficientCredits),
    ],
)
def test_refused_submits_create_nothing(
    db: Database, settings: Settings, request_changes: dict[str, object], error: type[Exception]
) -> None:
    settings = settings.with_changes(max_job_count=1000)
    user = create_user(db.sessions, "alice", credits=100)
    before = totals(db)
    fields: dict[str, object] = {"count": 5, "provider": "sandbox", **request_changes}
    with pytest.raises(error):
        jobs.submit(db.sessions, settings, JobRequest(user.user_id, **fields))  # type: ignore[arg-type]
    assert totals(db) == before
    listed = list_jobs(db.sessions, user.user_id, 10)
    assert (listed.jobs, listed.total) == ([], 0)


def test_concurrent_submits_with_one_key_create_one_job(db: Database, settings: Settings) -> None:
    user = create_user(db.sessions, "alice", credits=1000)
    request = JobRequest(user.user_id, 10, "sandbox", idempotency_key="same")
    results = in_threads(8, lambda _: jobs.submit(db.sessions, settings, request))
    submissions = [r for r in results if isinstance(r, Submission)]
    assert len(submissions) == 8, results
    assert len({s.job.id for s in submissions}) == 1
    assert sum(s.created for s in submissions) == 1
    assert list_jobs(db.sessions, user.user_id, 10).total == 1
    assert_invariants(db)


def test_concurrent_submits_never_overdraw(db: Database, settings: Settings) -> None:
    user = create_user(db.sessions, "alice", credits=55)
    results = in_threads(
        10, lambda _: jobs.submit(db.sessions, settings, JobRequest(user.user_id, 10, "sandbox"))
    )
    created = [r for r in results if isinstance(r, Submission)]
    refused = [r for r in results if isinstance(r, InsufficientCredits)]
    assert (len(created), len(refused)) == (5, 5), results
    with db.engine.connect() as connection:
        balance = connection.execute(
            text("SELECT balance FROM user_credits WHERE user_id = :u"), {"u": user.user_id}
        ).scalar_one()
    assert balance == 5
    assert_invariants(db)


def test_a_deployment_with_a_real_provider_refuses_the_sandbox(
    db: Database, settings: Settings
) -> None:
    real = settings.with_changes(provider="http", provider_url="https://provisioning.example")
    user = create_user(db.sessions, "alice", credits=100).user_id
    with pytest.raises(UnknownProvider, match="not offered here; choose one of: http"):
        jobs.submit(db.sessions, real, JobRequest(user, 5, "sandbox"))
    offering_both = real.with_changes(providers=("http", "sandbox"))
    assert jobs.submit(db.sessions, offering_both, JobRequest(user, 5, "sandbox")).created
