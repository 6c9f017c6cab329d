"""What a turn reads does not grow with what is queued: 10 jobs or 2,000, one user or many.

Each statement a turn runs is explained with ANALYZE at two queue sizes; the rows its
plan nodes produced and filtered away must stay the same, or within what one turn takes,
so no statement scans the queue behind the user it serves.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import TextClause, text

from core import transitions
from core.database import Database
from core.settings import Settings
from core.users import create_user
from worker import turn_queries as q
from worker.turns import TURN_SLICES

JOB_ITEMS = 40
CLAIMED_SLICES = 2  # what a turn's budget of 100 items takes of 40-item slices

# Jobs and their one slice each, queued for the given users, as a submit leaves them.
SEED = [
    """
    INSERT INTO jobs (user_id, provider, requested, price, slices_total)
    SELECT u, 'sandbox', :items, 1, 1
    FROM unnest(CAST(:users AS uuid[])) AS u CROSS JOIN generate_series(1, :per_user)
    """,
    """
    INSERT INTO job_slices (job_id, user_id, slice_index, start_index, stop_index, enqueued_at)
    SELECT id, user_id, 0, 0, :items, created_at FROM jobs
    """,
    # Every job retries an ambiguous slot (its first keeps a key): the claim reads them.
    """
    INSERT INTO kept_keys (job_id, item_index, provider_key)
    SELECT id, 0, 'parent:' || id FROM jobs
    """,
    """
    INSERT INTO turn_queue (user_id, position)
    SELECT u, nextval('turn_positions') FROM unnest(CAST(:users AS uuid[])) AS u
    """,
]


def queue(db: Database, users: int, per_user: int) -> list[uuid.UUID]:
    owners = [create_user(db.sessions, f"q-{n}", credits=10**6).user_id for n in range(users)]
    params = {"users": [str(o) for o in owners], "per_user": per_user, "items": JOB_ITEMS}
    with db.sessions() as session, session.begin():
        for statement in SEED:
            session.execute(text(statement), params)
        session.execute(
            text("ANALYZE jobs; ANALYZE job_slices; ANALYZE kept_keys; ANALYZE turn_queue")
        )
    return owners


def rows_touched(db: Database, statement: TextClause, params: dict[str, Any]) -> int:
    """Rows every plan node produced or filtered away, running the statement once."""
    with db.engine.connect() as connection:
        explain = text(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement.text}")
        plan = connection.execute(explain, params).scalar_one()
        connection.rollback()
    return _node_rows(plan[0]["Plan"])


def _node_rows(node: dict[str, Any]) -> int:
    own = int(node.get("Actual Rows", 0) * node.get("Actual Loops", 1))
    own += int(node.get("Rows Removed by Filter", 0)) + int(
        node.get("Rows Removed by Join Filter", 0)
    )
    return own + sum(_node_rows(child) for child in node.get("Plans", []))


def turn_rows(db: Database) -> dict[str, int]:
    """Rows read by each statement of a turn serving the user at the front."""
    with db.engine.connect() as connection:
        user = connection.execute(q.POP_USER).scalar_one()
        connection.rollback()
    mine = {"user_id": user}
    with db.engine.connect() as connection:
        ready = connection.execute(q.READY_SLICES, {**mine, "most": CLAIMED_SLICES}).all()
    taken = {
        "job_ids": [str(row.job_id) for row in ready],
        "slice_indices": [row.slice_index for row in ready],
        "lease": 30,
    }
    return {
        "claim": rows_touched(db, transitions.CLAIM, taken),
        "pop": rows_touched(db, q.POP_USER, {}),
        "ready": rows_touched(db, q.READY_SLICES, {**mine, "most": TURN_SLICES + 1}),
        "lanes": rows_touched(db, q.USER_LANES, {**mine, "cap": 100}),
        "wake": rows_touched(db, q.NEXT_WAKE, mine),
    }


@pytest.mark.parametrize(("small", "large"), [((2, 5), (40, 50)), ((1, 10), (1, 2000))])
def test_a_turn_reads_the_same_rows_with_10_or_2000_jobs_queued(
    db: Database, settings: Settings, small: tuple[int, int], large: tuple[int, int]
) -> None:
    queue(db, *small)
    few = turn_rows(db)
    with db.sessions() as session, session.begin():
        session.execute(text("TRUNCATE jobs, job_slices, turn_queue CASCADE"))
    queue(db, *large)
    many = turn_rows(db)
    # A statement may read a few times what a turn takes (its LIMIT; a plan may sort a few
    # dozen rows rather than walk the index) at either size, never what is queued.
    bound = 8 * (TURN_SLICES + 1)
    for statement, rows in many.items():
        assert rows <= max(1.5 * few[statement], bound), (statement, few, many)
