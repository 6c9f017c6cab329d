"""Running a job's slices in the test's own process, without a broker."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import text

from core.crypto import SecretBox
from core.database import Database
from core.providers.registry import build_provider
from core.settings import Settings
from core.vocabulary import SliceStatus
from tests.conftest import make_settings
from worker.processing import SliceContext, run_turn
from worker.provider_loop import ProviderLoop
from worker.shared_providers import ProviderFactory
from worker.slices import SliceResult


def app_settings(database_url: str, redis_url: str, **changes: Any) -> Settings:
    """Settings like the `settings` fixture's, for an app shared by a module's tests.

    Each TestClient start and stop costs a listener round, so modules share one client.
    """
    return make_settings(database_url, redis_url, **changes)


@contextlib.contextmanager
def slice_context(
    db: Database, settings: Settings, providers: ProviderFactory = build_provider
) -> Iterator[SliceContext]:
    """The context a worker process builds, on the test's database handle, for a block."""
    loop = ProviderLoop(settings.provider_concurrency)
    try:
        yield SliceContext(
            sessions=db.sessions,
            settings=settings,
            box=SecretBox(settings.fernet_key),
            providers=providers,
            provider_loop=loop,
        )
    finally:
        loop.close()


def process_job(db: Database, settings: Settings, job_id: uuid.UUID) -> list[SliceResult]:
    """Take turns until no slice of the job waits (a turn serves the user at the front of
    the turn queue, who may be another job's); stop early at a turn that records nothing."""
    results: list[SliceResult] = []
    with slice_context(db, settings) as context:
        while unfinished_slices(db, job_id):
            results.append(run_turn(context))
            if not results[-1].recorded:
                break
    return results


def unfinished_slices(db: Database, job_id: uuid.UUID) -> list[int]:
    """The indices of a job's slices that are not done, in order."""
    query = text(
        "SELECT slice_index FROM job_slices "
        "WHERE job_id = :job_id AND status <> :done ORDER BY slice_index"
    )
    with db.engine.connect() as connection:
        rows = connection.execute(query, {"job_id": job_id, "done": SliceStatus.DONE})
        return [int(r.slice_index) for r in rows]


class RecordedEnqueue:
    """An enqueue function for create_app that only remembers what it was asked to send."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, turns: int) -> int:
        self.calls.append(turns)
        return turns
