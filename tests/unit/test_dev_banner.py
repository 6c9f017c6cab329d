"""What `tally dev` tells the developer once everything runs."""

from __future__ import annotations

from pathlib import Path

from devstack.dev import banner
from devstack.discovery import RunningStack

TOKEN = "tly_" + "a" * 43


def test_the_banner_links_to_the_dashboard_signed_in_with_the_token_in_the_fragment(
    tmp_path: Path,
) -> None:
    stack = RunningStack(
        url="http://127.0.0.1:8123",
        database_url="postgresql://tally@/tally?host=/tmp/sock",
        redis_url="redis://127.0.0.1:6400/0",
        token_file=str(tmp_path / "demo-token"),
    )
    text = banner(stack, TOKEN, tmp_path)
    # After the '#': a browser never sends the fragment, so no server log can hold the token.
    assert f"http://127.0.0.1:8123/#token={TOKEN}" in text.split()
    assert f"TOKEN={TOKEN}" in text.split()
