"""A scrape costs the same at any size: its statements scan neither jobs nor the vault."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import bindparam, event, text
from starlette.testclient import TestClient

from core.database import Database
from core.settings import Settings
from core.users import create_user
from harness.waiting import wait_for
from tests.integration.test_metrics import scrape
from tests.support.inline import RecordedEnqueue
from web.app import create_app

JOBS, VAULT_ROWS = 50_000, 200_000
UNFINISHED = {"queued": 3, "running": 2}
STATUSES = ("completed", "failed", *UNFINISHED)
SEED_JOBS = text(
    """
    INSERT INTO jobs (user_id, status, provider, requested, successful, failures, price,
                      slices_total, slices_done, finished_at)
    SELECT :user_id, CASE WHEN g % 10 = 0 THEN 'failed' ELSE 'completed' END, 'sandbox', 4,
           CASE WHEN g % 10 = 0 THEN 0 ELSE 4 END, CASE WHEN g % 10 = 0 THEN 4 ELSE 0 END,
           1, 1, 1, now()
    FROM generate_series(1, :n) g
    """
)
SEED_UNFINISHED = text(
    "INSERT INTO jobs (user_id, status, provider, requested, price, slices_total) "
    "SELECT :user_id, :status, 'sandbox', 4, 1, 1 FROM generate_series(1, :n)"
)
# Every tenth account soft-deleted.
SEED_VAULT = text(
    """
    INSERT INTO user_accounts (user_id, job_id, item_index, provider, external_id, username,
                               secret_encrypted, deleted_at)
    SELECT :user_id, (SELECT id FROM jobs LIMIT 1), g, 'sandbox', 'x' || g, 'u' || g, '\\x00',
           CASE WHEN g % 10 = 0 THEN now() END
    FROM generate_series(1, :n) g
    """
)
BIG_TABLES = ("jobs", "user_accounts")
INDEXES = text("SELECT indexname FROM pg_indexes WHERE tablename IN :tables").bindparams(
    bindparam("tables", expanding=True)
)


@pytest.fixture
def seeded(db: Database) -> Database:
    """JOBS finished jobs, a few unfinished ones and VAULT_ROWS vault rows, analysed."""
    user_id = create_user(db.sessions, "volume", credits=0).user_id
    with db.engine.begin() as connection:
        connection.execute(text("SET LOCAL session_replication_role = replica"))  # no FK checks
        connection.execute(SEED_JOBS, {"user_id": user_id, "n": JOBS})
        for status, n in UNFINISHED.items():
            connection.execute(SEED_UNFINISHED, {"user_id": user_id, "status": status, "n": n})
        connection.execute(SEED_VAULT, {"user_id": user_id, "n": VAULT_ROWS})
    with db.engine.connect() as connection:
        connection.execute(text("ANALYZE jobs, user_accounts"))  # as autovacuum would
        connection.commit()
    db.engine.dispose()  # ending the sessions flushes their table statistics
    return db


@pytest.fixture
def client(settings: Settings, seeded: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, enqueue=RecordedEnqueue())) as test_client:
        yield test_client


def scrape_statements(client: TestClient) -> list[tuple[str, Any]]:
    """The SELECT statements (and their parameters) one scrape sends to PostgreSQL."""
    engine = client.app.state.database.engine  # type: ignore[attr-defined]
    sent: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.get("/metrics").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return sent


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan."""
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


def big_table_reads(db: Database, statement: str, parameters: Any) -> list[tuple[str, str, int]]:
    """(node type, relation or index, rows it returned) for each read of jobs or the vault."""
    with db.engine.connect() as connection:
        indexes = set(connection.execute(INDEXES, {"tables": BIG_TABLES}).scalars())
        explained = connection.exec_driver_sql(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters
        ).scalar_one()
    plan = (json.loads(explained) if isinstance(explained, str) else explained)[0]["Plan"]
    reads: list[tuple[str, str, int]] = []
    for node in plan_nodes(plan):
        name = node.get("Index Name") or node.get("Relation Name")
        if name in BIG_TABLES or name in indexes:
            rows = int(node["Actual Rows"] * node["Actual Loops"])
            reads.append((str(node["Node Type"]), str(name), rows))
    return reads


def test_a_scrape_reads_only_unfinished_jobs_and_estimates_the_rest(
    client: TestClient, seeded: Database
) -> None:
    statements = scrape_statements(client)
    assert statements
    reads = [read for sent in statements for read in big_table_reads(seeded, *sent)]
    assert all(kind != "Seq Scan" for kind, _, _ in reads), reads
    # Each partial index of unfinished jobs (by status, by user, by age) holds only those.
    unfinished_indexes = {
        "ix_jobs_unfinished",
        "ix_jobs_user_id_unfinished",
        "ix_jobs_unfinished_updated_at",
    }
    assert {name for _, name, _ in reads} <= {"jobs", *unfinished_indexes}, reads
    assert all(rows <= sum(UNFINISHED.values()) for _, _, rows in reads), reads

    figures = wait_for(lambda: _estimates(client), timeout=15)
    assert figures["completed"] == pytest.approx(0.9 * JOBS, rel=0.1)
    assert figures["failed"] == pytest.approx(0.1 * JOBS, rel=0.2)
    assert figures["vault"] == pytest.approx(0.9 * VAULT_ROWS, rel=0.1)
    assert {status: figures[status] for status in UNFINISHED} == UNFINISHED  # exact


def _estimates(client: TestClient) -> dict[str, float] | None:
    samples = scrape(client.get("/metrics").text)
    figures = {s: samples[("tally_jobs", (("status", s),))] for s in STATUSES}
    figures["vault"] = samples[("tally_vault_accounts", ())]
    return figures if figures["vault"] else None
