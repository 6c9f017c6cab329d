"""Outbox apply: racing appliers count every row once; a failed batch applies nothing."""

from __future__ import annotations

import random
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core import outbox
from core.database import Database
from core.settings import Settings
from core.vocabulary import Topic
from harness.outbox import apply_pending
from outbox.apply import apply_batch
from tests.support.state import pending_outbox

USERS = 50
JOB_ROWS = 2_800
REMOVED_ROWS = 200
WRITE_BATCH = 500

Figures = dict[uuid.UUID, dict[str, int]]


def make_users(db: Database, count: int) -> list[uuid.UUID]:
    with db.sessions() as session, session.begin():
        rows = session.execute(
            text(
                "INSERT INTO users (name) SELECT 'u' || n FROM generate_series(1, :n) n "
                "RETURNING id"
            ),
            {"n": count},
        )
        return sorted(r.id for r in rows)


def empty_figures() -> dict[str, int]:
    return {"requested": 0, "successful": 0, "failures": 0, "business_centers": 0}


class Backlog:
    """Outbox rows written through outbox.add, with the per-user sums they must produce."""

    def __init__(self, db: Database, users: list[uuid.UUID], seed: int = 7) -> None:
        self.db = db
        self.users = users
        self.rng = random.Random(seed)
        self.expected: Figures = defaultdict(empty_figures)
        self.rows = 0

    def add(self, jobs: int, removals: int, per_transaction: int = WRITE_BATCH) -> None:
        events = [self._job() for _ in range(jobs)] + [self._removal() for _ in range(removals)]
        self.rng.shuffle(events)
        for start in range(0, len(events), per_transaction):
            with self.db.sessions() as session, session.begin():
                for topic, user, payload in events[start : start + per_transaction]:
                    assert outbox.add(session, topic, str(uuid.uuid4()), user, payload)
        for topic, user, payload in events:
            self._count(topic, user, payload)
        self.rows += len(events)

    def _job(self) -> tuple[Topic, uuid.UUID, dict[str, int]]:
        requested = self.rng.randint(1, 5_000)
        successful = self.rng.randint(0, requested)
        payload = {"requested": requested, "successful": successful}
        return (
            Topic.JOB_COMPLETED,
            self.rng.choice(self.users),
            {
                **payload,
                "failures": requested - successful,
            },
        )

    def _removal(self) -> tuple[Topic, uuid.UUID, dict[str, int]]:
        return Topic.VAULT_REMOVED, self.rng.choice(self.users), {"count": 1}

    def _count(self, topic: str, user: uuid.UUID, payload: dict[str, int]) -> None:
        figures = self.expected[user]
        if topic == Topic.JOB_COMPLETED:
            for field in ("requested", "successful", "failures"):
                figures[field] += payload[field]
            figures["business_centers"] += payload["successful"]
        else:
            figures["business_centers"] -= payload["count"]


def stats_of(db: Database) -> Figures:
    with db.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT user_id, requested, successful, failures, business_centers FROM user_stats"
            )
        ).mappings()
        return {r["user_id"]: {k: int(r[k]) for k in empty_figures()} for r in rows}


def applied_rows(db: Database) -> int:
    with db.engine.connect() as connection:
        return int(
            connection.execute(
                text("SELECT count(*) FROM outbox WHERE applied_at IS NOT NULL")
            ).scalar_one()
        )


@pytest.fixture
def backlog(db: Database) -> Backlog:
    return Backlog(db, make_users(db, USERS))


@pytest.fixture
def handles(settings: Settings) -> Iterator[Callable[[int], list[Database]]]:
    """Separate database handles, one per applier thread, as separate daemons would have."""
    opened: list[Database] = []

    def open_handles(count: int) -> list[Database]:
        new = [
            Database.from_settings(settings, pool_size=1, application_name=f"tally-applier-{i}")
            for i in range(count)
        ]
        opened.extend(new)
        return new

    yield open_handles
    for handle in opened:
        handle.dispose()


def race(handles: list[Database], action: Callable[[Database], int]) -> list[int]:
    """Run the action once per handle, all threads released together; re-raise any error."""
    barrier = threading.Barrier(len(handles))
    results: list[int] = [0] * len(handles)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = action(handles[i])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(handles))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize(
    ("appliers", "limit", "scale"), [(2, 300, 0.5), (4, 97, 1.0)], ids=["two", "four"]
)
def test_racing_appliers_count_every_row_once(
    db: Database,
    backlog: Backlog,
    handles: Callable[[int], list[Database]],
    appliers: int,
    limit: int,
    scale: float,
) -> None:
    backlog.add(int(JOB_ROWS * scale), int(REMOVED_ROWS * scale))
    applied = race(
        handles(appliers), lambda h: apply_pending(h.sessions, limit=limit, max_batches=10_000)
    )
    assert sum(applied) == backlog.rows
    assert pending_outbox(db) == 0 and applied_rows(db) == backlog.rows
    assert stats_of(db) == backlog.expected
    assert apply_pending(db.sessions) == 0
    assert stats_of(db) == backlog.expected


def test_appliers_racing_with_writers_count_every_row_once(
    db: Database, backlog: Backlog, handles: Callable[[int], list[Database]]
) -> None:
    backlog.add(600, 60)
    writing = threading.Event()
    writing.set()

    def write_more() -> None:
        try:
            for _ in range(20):
                backlog.add(30, 3, per_transaction=11)
        finally:
            writing.clear()

    def apply_until_quiet(handle: Database) -> int:
        total = 0
        while writing.is_set() or pending_outbox(handle) > 0:
            total += apply_pending(handle.sessions, limit=53, max_batches=10_000)
        return total

    writer = threading.Thread(target=write_more)
    writer.start()
    try:
        applied = race(handles(3), apply_until_quiet)
    finally:
        writer.join()
    assert sum(applied) == backlog.rows == 660 + 20 * 33
    assert pending_outbox(db) == 0
    assert stats_of(db) == backlog.expected


def test_apply_batch_reports_rows_and_users(db: Database, backlog: Backlog) -> None:
    backlog.add(30, 0)
    first = apply_batch(db.sessions, limit=20)
    second = apply_batch(db.sessions, limit=20)
    assert (first.rows, second.rows) == (20, 10)
    assert 1 <= first.users <= 20 and 1 <= second.users <= 10
    assert apply_batch(db.sessions, limit=20).rows == 0
    assert stats_of(db) == backlog.expected


@contextmanager
def failing_trigger(db: Database, ddl: str, name: str, table: str) -> Iterator[None]:
    """Install a trigger that raises, and remove it afterwards whatever happens."""
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "CREATE FUNCTION tally_test_fail() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'injected failure'; END $$"
            )
        )
        connection.execute(text(ddl))
    try:
        yield
    finally:
        with db.engine.begin() as connection:
            connection.execute(text(f"DROP TRIGGER IF EXISTS {name} ON {table}"))
            connection.execute(text("DROP FUNCTION IF EXISTS tally_test_fail()"))


def fail_on_one_user(db: Database, user: uuid.UUID) -> AbstractContextManager[None]:
    """A failure inside the apply statement: the upsert of one user's stats raises."""
    return failing_trigger(
        db,
        "CREATE TRIGGER tally_test_fail_stats BEFORE INSERT OR UPDATE ON user_stats "
        f"FOR EACH ROW WHEN (NEW.user_id = '{user}') EXECUTE FUNCTION tally_test_fail()",
        "tally_test_fail_stats",
        "user_stats",
    )


def fail_at_commit(db: Database) -> AbstractContextManager[None]:
    """A failure at COMMIT, after the statement ran: a deferred constraint trigger."""
    return failing_trigger(
        db,
        "CREATE CONSTRAINT TRIGGER tally_test_fail_commit AFTER UPDATE ON outbox "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION tally_test_fail()",
        "tally_test_fail_commit",
        "outbox",
    )


@pytest.mark.parametrize("where", ["mid-statement", "at-commit"])
def test_a_failed_batch_applies_nothing(db: Database, backlog: Backlog, where: str) -> None:
    backlog.add(400, 40)
    apply_pending(db.sessions, limit=100, max_batches=1)
    settled = stats_of(db)
    assert applied_rows(db) == 100
    victim = backlog.users[len(backlog.users) // 2]
    injected = fail_on_one_user(db, victim) if where == "mid-statement" else fail_at_commit(db)
    with injected:
        for _ in range(3):
            with pytest.raises(DBAPIError, match="injected failure"):
                apply_pending(db.sessions, limit=10_000)
            assert applied_rows(db) == 100
            assert stats_of(db) == settled
    assert apply_pending(db.sessions) == backlog.rows - 100
    assert pending_outbox(db) == 0
    assert stats_of(db) == backlog.expected
