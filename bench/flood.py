"""A flood of bad tokens beside a real user: what the flood costs the user's answers.

The web process (`uvicorn --factory web.main:app`) serves one real user polling
`GET /api/stats` while 16 client addresses send bad bearer tokens as fast as they are
answered (each address is refused with `429` past its limit). The figure is the user's median
answer time from the first bad token until every address was refused three times; the
reference is the same user's median with no flood, measured before and after it in the same
run (the better of the two).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import httpx

from bench.context import Bench
from bench.processes import uvicorn
from bench.report import Row, Target
from core.users import create_user
from harness.auth_flood import Flood

CLIENTS = 16
RATIO_LIMIT = 2.0


def run(bench: Bench) -> list[Row]:
    """The real user's median /api/stats answer during the flood, beside a quiet moment's."""
    polls = bench.size(400, 80)
    bench.reset()
    user = create_user(bench.database.sessions, "real", credits=10)
    auth = {"Authorization": f"Bearer {user.token}"}
    with (
        uvicorn("web.main:app", bench.env(), bench.run_dir, "/healthz", factory=True) as base,
        httpx.Client(base_url=base, headers=auth, timeout=30) as client,
    ):
        _answer_times(client, polls)  # warm-up
        before = _answer_times(client, polls)
        flood = Flood(base, [f"127.0.0.{10 + n}" for n in range(CLIENTS)])
        flood.start()
        try:
            flooded = _answer_times(client, polls, lambda: flood.refused >= 3 * CLIENTS)
        finally:
            answered = flood.finish()
        after = _answer_times(client, polls)
    bench.reset()
    quiet = min(statistics.median(before), statistics.median(after))
    statuses = [status for found in answered.values() for status in found]
    return [
        Row(
            "real user's GET /api/stats during a bad-token flood, p50",
            statistics.median(flooded),
            "ms",
            quiet,
            "the same polls with no flood, same run",
            Target("ratio", "<=", RATIO_LIMIT),
            f"{CLIENTS} addresses sent {len(statuses):,} bad tokens, "
            f"{statuses.count(429):,} answered 429",
            {"polls_flooded": len(flooded), "quiet_before_ms": statistics.median(before)},
        )
    ]


def _answer_times(
    client: httpx.Client, polls: int, until: Callable[[], bool] = lambda: True
) -> list[float]:
    """Milliseconds of each poll, `polls` of them and until `until` holds; every one a 200."""
    took: list[float] = []
    while len(took) < polls or not until():
        started = time.perf_counter()
        answer = client.get("/api/stats")
        took.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
    return took
