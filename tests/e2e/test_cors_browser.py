"""The frontend's pages call the API from their own origin in a real Chromium, with a JWT.

A page of an allowed origin submits a job and polls it to completion; the same page served
from another origin is refused by the browser (the preflight gets no CORS answer), so the
request never reaches the API.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from core.database import Database
from core.schema import Job, User
from harness.stack import Stack
from tests.support.jwks import SECRET, hs256

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PAGE = b"<!doctype html><html><head><title>frontend</title></head><body>app</body></html>"

# What the frontend does: submit with its user's JWT, then poll the Location until done.
SUBMIT_AND_POLL = """async ([api, token]) => {
  const auth = { Authorization: `Bearer ${token}` };
  try {
    const submitted = await fetch(`${api}/api/jobs`, {
      method: "POST",
      headers: { ...auth, "Content-Type": "application/json", "Idempotency-Key": "order-1" },
      body: JSON.stringify({ count: 6 }),
    });
    const location = submitted.headers.get("Location");
    let job = await submitted.json();
    for (let i = 0; i < 300 && !["completed", "failed"].includes(job.status); i++) {
      await new Promise((done) => setTimeout(done, 100));
      job = await (await fetch(`${api}${location}`, { headers: auth })).json();
    }
    const stats = await (await fetch(`${api}/api/stats`, { headers: auth })).json();
    return { status: submitted.status, location, job, stats };
  } catch (error) {
    return { error: String(error) };
  }
}"""

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
]


class PageServer:
    """Serves the frontend's page on a port of its own: an origin of its own."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(PAGE)))
                self.end_headers()
                self.wfile.write(PAGE)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


@pytest.fixture
def pages() -> Iterator[tuple[PageServer, PageServer]]:
    allowed, other = PageServer(), PageServer()
    try:
        yield allowed, other
    finally:
        allowed.close()
        other.close()


@pytest.fixture
def api_url(
    process_env: dict[str, str],
    db: Database,
    redis_client: object,
    tmp_path: Path,
    pages: tuple[PageServer, PageServer],
) -> Iterator[str]:
    env = {
        **process_env,
        "TALLY_JWT_SECRET": SECRET,
        "TALLY_SIGNUP_CREDITS": "50",
        "TALLY_CORS_ORIGINS": f"https://app.example, {pages[0].origin}",
        "TALLY_APPLY_INTERVAL": "0.2",
    }
    with Stack(env, tmp_path / "logs") as stack:
        url = stack.web()
        stack.worker(threads=2)
        stack.reconcile()
        yield url


def count(db: Database, entity: type[Any]) -> int:
    with db.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(entity)) or 0)


def test_an_allowed_origin_submits_and_polls_with_a_jwt_and_another_is_refused(
    api_url: str, db: Database, pages: tuple[PageServer, PageServer]
) -> None:
    from playwright.sync_api import sync_playwright

    allowed, other = pages
    sub = str(uuid.uuid4())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.goto(allowed.origin)
            done = page.evaluate(SUBMIT_AND_POLL, [api_url, hs256(sub)])
            assert "error" not in done, done
            assert done["status"] == 202
            assert done["location"] == f"/api/job/{done['job']['id']}"
            assert (done["job"]["status"], done["job"]["successful"]) == ("completed", 6)
            assert done["stats"]["user_id"] == sub

            stranger = browser.new_page()
            stranger.goto(other.origin)
            refused = stranger.evaluate(SUBMIT_AND_POLL, [api_url, hs256(str(uuid.uuid4()))])
            assert refused == {"error": "TypeError: Failed to fetch"}
        finally:
            browser.close()
    # The refused page's request never reached the API: no user, no job for it.
    assert (count(db, User), count(db, Job)) == (1, 1)
