"""Liveness and readiness probes."""

from __future__ import annotations

import msgspec
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response

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
            row = session.execute(
                text(
                    "SELECT count(*) AS backlog, "
                    "extract(epoch FROM now() - min(created_at)) AS oldest "
                    "FROM outbox WHERE applied_at IS NULL"
                )
            ).one()
            daemon = newest(session)
    except Exception as exc:  # any failure means "not ready"
        return json_response(bodies.NotReady("unavailable", type(exc).__name__), 503)
    body = bodies.Ready(
        status="ok",
        outbox_backlog=int(row.backlog),
        outbox_oldest_pending_seconds=float(row.oldest or 0.0),
        reconcile=None if daemon is None else msgspec.convert(daemon, bodies.Heartbeat),
    )
    return json_response(body)
