"""A real uvicorn server in a thread of the test process, for streaming and long-poll tests."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette

from devstack.processes import free_port
from harness.waiting import wait_for


@dataclass
class RunningServer:
    """The app being served and its base URL."""

    app: Starlette
    url: str


@contextlib.contextmanager
def serve(app: Starlette) -> Iterator[RunningServer]:
    """Serve `app` with uvicorn until the block ends; the live listener is up on entry."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=15)
        assert app.state.live.listener.wait_connected(10)
        yield RunningServer(app, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=15)
