"""CLI tables: whole ids and readable times at 80 columns, nothing wider than the terminal."""

from __future__ import annotations

import io
import re
import uuid
from datetime import UTC, datetime

import pytest
from rich.console import Console

from cli.tables import accounts_table, jobs_table, page_title, when

ISO = re.compile(r"\d{4}-\d{2}-\d{2}T")


def job() -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "status": "completed",
        "requested": 100_000,
        "successful": 99_998,
        "failures": 2,
        "progress": 1.0,
        "created_at": "2026-12-01T08:44:10.123456+00:00",
        "finished_at": "2026-12-01T08:45:01.5+00:00",
    }


def account() -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "job_id": str(uuid.uuid4()),
        "username": "user_0123456789ab",
        "external_id": "sbx_0123456789abcdef",
        "provider": "sandbox",
        "created_at": "2026-12-01T08:44:10+00:00",
    }


def rendered(table: object, width: int) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(table)
    return out.getvalue()


@pytest.mark.parametrize("width", [80, 100, 120, 200])
def test_job_ids_stay_whole_and_times_readable_at_any_width(width: int) -> None:
    jobs = [job(), job()]
    text = rendered(jobs_table(jobs, "Jobs", width), width)
    for j in jobs:
        assert str(j["id"]) in text
    assert "…" not in text
    assert not ISO.search(text)
    assert when(str(jobs[0]["created_at"])) in text
    assert max(len(line) for line in text.splitlines()) <= width


@pytest.mark.parametrize("width", [80, 120])
def test_account_ids_stay_whole_and_secrets_never_show(width: int) -> None:
    accounts = [account()]
    text = rendered(accounts_table(accounts, "Vault", width), width)
    assert str(accounts[0]["id"]) in text and "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width


def test_wider_terminals_show_more_columns() -> None:
    narrow = rendered(jobs_table([job()], "Jobs", 80), 80)
    wide = rendered(jobs_table([job()], "Jobs", 120), 120)
    assert "failed" not in narrow and "failed" in wide and "progress" in wide


def test_times_are_local_and_carry_the_year_only_when_it_is_not_this_one() -> None:
    now = datetime.now(UTC)
    assert str(now.astimezone().year) not in when(now.isoformat())
    assert when("2019-03-04T05:06:00+00:00").startswith("2019")
    assert when(None) == "—"


def test_page_titles_never_read_zero_to_zero() -> None:
    assert page_title("Jobs", {"items": [], "total": 0}) == "Jobs: none"
    assert page_title("Jobs", {"items": [1, 2], "total": 9}) == "Jobs: 2 of 9"
