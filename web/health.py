"""Liveness and readiness probes."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from outbox.backlog import outbox_backlog
from reconcile.heartbeat import newest
from web import bodies
from web.answers import json_response


def healthz(request: Request) -> Response:
    """GET /healthz: the process is up."""
    return json_response(bodies.Health(status="ok"))


def readyz(request: Request) -> Response:
    """GET /readyz: the database answers; the outbox backlog and newest daemon heartbeat."""
    try:
        with request.app.state.database.sessions() as session, session.begin():
            backlog = outbox_backlog(session)
            daemon = newest(session)
    except Exception as exc:  # any failure means "not ready"
        return json_response(bodies.NotReady("unavailable", type(exc).__name__), 503)
    body = bodies.Ready(
        status="ok",
        outbox_backlog=backlog.rows,
        outbox_oldest_pending_seconds=backlog.oldest_seconds,
        reconcile=None if daemon is None else msgspec.convert(daemon, bodies.Heartbeat),
    )
    return json_response(body)
