"""The Starlette application: routes, middleware and lifespan, as data."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.routing import BaseRoute, Route

from core.database import Database
from core.logs import configure_logging
from core.settings import Settings
from web import admin, dashboard, events, health, jobs, me, metrics, openapi
from web.auth import TokenBackend
from web.errors import EXCEPTION_HANDLERS
from web.live import LiveJobs
from web.request_log import RequestLogContext

Enqueue = Callable[[uuid.UUID, Iterable[int]], int]


def routes() -> list[BaseRoute]:
    """Every HTTP route the service answers."""
    return [
        Route("/", dashboard.index),
        Route("/docs", openapi.docs),
        Route("/openapi.json", openapi.openapi_json),
        Route("/metrics", metrics.metrics),
        dashboard.static_files(),
        Route("/healthz", health.healthz),
        Route("/readyz", health.readyz),
        Route("/api/jobs", jobs.submit_job, methods=["POST"]),
        Route("/api/jobs", jobs.list_jobs, methods=["GET"]),
        Route("/api/job/{job_id}", jobs.job_status, methods=["GET"]),
        Route("/api/jobs/{job_id}", jobs.job_status, methods=["GET"]),
        Route("/api/job/{job_id}/events", events.job_events, methods=["GET"]),
        Route("/api/stats", me.stats, methods=["GET"]),
        Route("/api/credits", me.credits_view, methods=["GET"]),
        Route("/api/accounts", me.accounts, methods=["GET"]),
        Route("/api/accounts/{account_id}", me.delete_account, methods=["DELETE"]),
        Route("/api/accounts/{account_id}/reveal", me.reveal_secret, methods=["POST"]),
        Route("/api/admin/reports", admin.reports, methods=["GET"]),
        Route("/api/admin/reports/{report_id}", admin.report, methods=["GET"]),
    ]


def default_enqueue(job_id: uuid.UUID, indices: Iterable[int]) -> int:
    """Send slice messages through the Dramatiq broker configured from the environment."""
    from worker.dispatch import enqueue_slices

    return enqueue_slices(job_id, indices)


def create_app(settings: Settings | None = None, enqueue: Enqueue | None = None) -> Starlette:
    """Build the app; the database engine is created in the lifespan, not at import."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.settings = settings or Settings.from_env()
        if settings is None:
            configure_logging(app.state.settings.log_format)
        app.state.enqueue = enqueue or default_enqueue
        app.state.database = Database.from_settings(
            app.state.settings, pool_size=20, application_name="tally-web"
        )
        app.state.live = LiveJobs(app.state.settings.database_url, app.state.database.reader)
        app.state.live.start()
        app.state.metrics = metrics.build_registry(app.state.database.sessions, app.state.live)
        try:
            yield
        finally:
            app.state.live.stop()
            app.state.database.dispose()

    return Starlette(
        routes=routes(),
        middleware=[
            Middleware(AuthenticationMiddleware, backend=TokenBackend()),
            Middleware(RequestLogContext),
        ],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=lifespan,
    )


if os.environ.get("LOG_FORMAT") == "json":  # JSON from uvicorn's first line on
    configure_logging("json")
app = create_app()
