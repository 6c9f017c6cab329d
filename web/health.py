"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from core.settings import Settings
from outbox.backlog import Backlog, outbox_backlog
from reconcile.heartbeat import newest
from web.auth.scrape_token import Access, probe_access
from web.contract import bodies
from web.contract.answers import json_response

# A daemon silent for this many heartbeat intervals is taken for gone.
HEARTBEAT_INTERVALS = 5
HIDDEN_WHEN_OPEN = ("hostname", "pid")


def healthz(request: Request) -> Response:
    """GET /healthz: the process is up."""
    return json_response(bodies.Health(status="ok"))


def readyz(request: Request) -> Response:
    """GET /readyz: the database answers, the outbox is being applied and a daemon beats."""
    access = probe_access(request)
    try:
        with request.app.state.database.sessions() as session, session.begin():
            backlog = outbox_backlog(session)
            daemon = newest(session)
    except Exception as exc:  # any failure means "not ready"
        return json_response(bodies.NotReady("unavailable", type(exc).__name__), 503)
    problem = readiness_problem(request.app.state.settings, backlog, daemon)
    if problem is not None:
        return json_response(bodies.NotReady("unavailable", problem), 503)
    return json_response(_ready(backlog, daemon, access))


def readiness_problem(
    settings: Settings, backlog: Backlog, daemon: dict[str, Any] | None
) -> str | None:
    """Why the service is not ready (no live daemon, a stuck outbox), or None."""
    return _daemon_problem(settings, daemon) or _outbox_problem(settings, backlog)


def _daemon_problem(settings: Settings, daemon: dict[str, Any] | None) -> str | None:
    if daemon is None:
        return "no reconcile daemon has a heartbeat"
    if daemon["age_seconds"] > HEARTBEAT_INTERVALS * settings.intervals.heartbeat:
        return f"the newest reconcile heartbeat is {daemon['age_seconds']:.1f} s old"
    return None


def _outbox_problem(settings: Settings, backlog: Backlog) -> str | None:
    if backlog.oldest_seconds <= settings.ready_max_outbox_age:
        return None
    return (
        f"the oldest unapplied outbox row is {backlog.oldest_seconds:.1f} s old "
        f"(TALLY_READY_MAX_OUTBOX_AGE is {settings.ready_max_outbox_age:g} s)"
    )


def _ready(backlog: Backlog, daemon: dict[str, Any] | None, access: Access) -> bodies.Ready:
    if daemon is not None and access is not Access.FULL:
        daemon = {k: v for k, v in daemon.items() if k not in HIDDEN_WHEN_OPEN}
    return bodies.Ready(
        status="ok",
        outbox_backlog=backlog.rows,
        outbox_oldest_pending_seconds=backlog.oldest_seconds,
        outbox_quarantined=backlog.quarantined,
        reconcile=None if daemon is None else msgspec.convert(daemon, bodies.Heartbeat),
    )
