"""A data folder belongs to one `tally dev`; other commands find the stack running in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigurationError
from devstack.discovery import RunningStack, publish, running_stack, with_running_stack, withdraw
from devstack.ownership import DataDirClaim, is_claimed


def stack_in(folder: Path) -> RunningStack:
    (folder / "demo-token").write_text("tly_demo\n")
    return RunningStack(
        url="http://127.0.0.1:8123",
        database_url="postgresql://tally@/tally?host=/tmp/sock",
        redis_url="redis://127.0.0.1:6400/0",
        token_file=str(folder / "demo-token"),
    )


def test_a_second_claim_on_a_held_folder_is_refused_naming_the_holder(tmp_path: Path) -> None:
    first, second = DataDirClaim(tmp_path), DataDirClaim(tmp_path)
    first.acquire()
    try:
        assert is_claimed(tmp_path)
        with pytest.raises(ConfigurationError, match=r"another `tally dev` \(pid \d+\)"):
            second.acquire()
    finally:
        first.release()
    assert not is_claimed(tmp_path)
    second.acquire()  # free again once the holder is gone
    second.release()


def test_a_stack_file_counts_only_while_its_run_holds_the_folder(tmp_path: Path) -> None:
    claim = DataDirClaim(tmp_path)
    claim.acquire()
    publish(tmp_path, stack_in(tmp_path))
    assert running_stack(tmp_path) == stack_in(tmp_path)
    assert (tmp_path / "stack.json").stat().st_mode & 0o777 == 0o600
    claim.release()  # the run died without cleaning up: its file is stale
    assert running_stack(tmp_path) is None
    withdraw(tmp_path)
    assert not (tmp_path / "stack.json").exists()


def test_commands_take_servers_url_and_token_from_a_running_stack(tmp_path: Path) -> None:
    claim = DataDirClaim(tmp_path)
    claim.acquire()
    try:
        publish(tmp_path, stack_in(tmp_path))
        env = with_running_stack({"PATH": "/bin"}, tmp_path)
        assert env["DATABASE_URL"].startswith("postgresql://tally@")
        assert env["REDIS_URL"] == "redis://127.0.0.1:6400/0"
        assert (env["TALLY_URL"], env["TALLY_TOKEN"]) == ("http://127.0.0.1:8123", "tly_demo")
        # What is given wins, and servers only come as a pair, a token only with its URL.
        mine = {"DATABASE_URL": "postgres://prod/db", "TALLY_URL": "https://tally.example"}
        env = with_running_stack(mine, tmp_path)
        assert env["DATABASE_URL"] == "postgres://prod/db" and "REDIS_URL" not in env
        assert env["TALLY_URL"] == "https://tally.example" and "TALLY_TOKEN" not in env
    finally:
        claim.release()
    assert with_running_stack({"PATH": "/bin"}, tmp_path) == {"PATH": "/bin"}


def test_the_export_line_sets_every_variable(tmp_path: Path) -> None:
    line = stack_in(tmp_path).export_line()
    assert line.startswith("export DATABASE_URL='postgresql://")
    for name in ("REDIS_URL", "TALLY_URL", "TALLY_TOKEN='tly_demo'"):
        assert name in line
