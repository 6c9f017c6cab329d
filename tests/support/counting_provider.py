"""A real HTTP provisioning server that records how many calls of each job were in flight.

It answers the `http` provider's POST like an operator's API would (an account derived
from the Idempotency-Key) after a pause, and logs every call's start and end in the order
they happened, so a test can replay the log to find the peak in flight of any set of jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from devstack.processes import free_port
from harness.waiting import wait_for


@dataclass
class CallLog:
    """Each call's start (+1) and end (-1), per job, in the order the server saw them."""

    events: list[tuple[uuid.UUID, int]] = field(default_factory=list)
    keys: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, job_id: uuid.UUID, change: int) -> None:
        """Record a call of `job_id` starting (+1) or ending (-1)."""
        with self.lock:
            self.events.append((job_id, change))

    def peak(self, job_ids: Iterable[uuid.UUID]) -> int:
        """The most calls of these jobs together that were ever in flight at once."""
        wanted = set(job_ids)
        in_flight = peak = 0
        with self.lock:
            for job_id, change in self.events:
                if job_id in wanted:
                    in_flight += change
                    peak = max(peak, in_flight)
        return peak


def provisioning_app(log: CallLog, pause: float) -> Starlette:
    """The operator's API: POST / creates the account of its Idempotency-Key."""

    async def create(request: Request) -> JSONResponse:
        key = request.headers["idempotency-key"]
        job_id = uuid.UUID(key.rsplit(":", 1)[0])
        log.note(job_id, +1)
        try:
            with log.lock:
                log.keys[key] += 1
            await asyncio.sleep(pause)
            body = {"external_id": f"ext-{key}", "username": f"u-{key}", "secret": f"s-{key}"}
            return JSONResponse(body)
        finally:
            log.note(job_id, -1)

    return Starlette(routes=[Route("/", create, methods=["POST"])])


@contextlib.contextmanager
def counting_provider(pause: float) -> Iterator[tuple[str, CallLog]]:
    """Serve the provisioning API in a thread; yield its URL and its call log."""
    log = CallLog()
    port = free_port()
    config = uvicorn.Config(
        provisioning_app(log, pause), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="provisioning", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=15)
        yield f"http://127.0.0.1:{port}/", log
    finally:
        server.should_exit = True
        thread.join(timeout=15)
