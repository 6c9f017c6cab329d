"""Liveness and readiness probes."""

from __future__ import annotations

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from reconcile.heartbeat import newest


def healthz(request: Request) -> Response:
    """GET /healthz: the process is up."""
    return JSONResponse({"status": "ok"})


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
        return JSONResponse({"status": "unavailable", "reason": type(exc).__name__}, 503)
    return JSONResponse(
        {
            "status": "ok",
            "outbox_backlog": int(row.backlog),
            "outbox_oldest_pending_seconds": float(row.oldest or 0.0),
            "reconcile": daemon,
        }
    )
