"""Counts the SQL statements a service process sends, for the crowd benchmark.

Put this folder on a service's PYTHONPATH with BENCH_STATEMENTS_DIR set: every SQLAlchemy
engine of the process then counts its statements (transaction control and pool pings are
not statements here), and a daemon thread writes `<pid>.count` in that folder every 0.2 s
and at exit. Nothing of tally imports this; the bench starts the process with it.
"""

from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path

_folder = os.environ.get("BENCH_STATEMENTS_DIR", "")

if _folder:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    _count = [0]

    def _counted(*_args: object) -> None:
        _count[0] += 1

    def _write() -> None:
        path = Path(_folder) / f"{os.getpid()}.count"  # after a fork the pid differs
        path.write_text(str(_count[0]))

    def _keep_writing() -> None:
        while True:
            threading.Event().wait(0.2)
            _write()

    def _start() -> None:
        _count[0] = 0
        threading.Thread(target=_keep_writing, name="bench-statements", daemon=True).start()

    event.listen(Engine, "before_cursor_execute", _counted)
    os.register_at_fork(after_in_child=_start)  # Dramatiq's worker processes may be forked
    _start()
    atexit.register(_write)
