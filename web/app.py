"""The Starlette application: routes, middleware and lifespan, as data."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Route

from core.broker import make_broker
from core.cursors import CursorBox
from core.database import Database
from core.settings import Settings
from core.turn_messages import send_turns
from web import (
    admin,
    dashboard,
    exports,
    health,
    jobs,
    me,
    metrics,
    operator,
    retry,
    webhooks,
)
from web.auth import tokens
from web.auth.backend import TokenBackend, answer_failure
from web.contract import openapi
from web.contract.errors import EXCEPTION_HANDLERS
from web.delivery_metrics import ExportCounters
from web.live import events
from web.live.hub import LiveJobs
from web.request_log import RequestLogContext
from web.security_headers import SecurityHeaders
from web.sender import TurnSender

Enqueue = Callable[[int], int]  # sends that many turn messages


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
        Route("/api/job/{job_id}/cancel", jobs.cancel, methods=["POST"]),
        Route("/api/job/{job_id}/retry", retry.retry, methods=["POST"]),
        Route("/api/job/{job_id}/accounts", exports.job_accounts, methods=["GET"]),
        Route("/api/job/{job_id}/export", exports.export_job, methods=["POST"]),
        Route("/api/exports", exports.export, methods=["POST"]),
        Route("/api/exports", exports.list_exports, methods=["GET"]),
        Route("/api/webhooks", webhooks.create, methods=["POST"]),
        Route("/api/webhooks", webhooks.list_endpoints, methods=["GET"]),
        Route("/api/webhooks/{endpoint_id}", webhooks.delete, methods=["DELETE"]),
        Route("/api/webhooks/{endpoint_id}/deliveries", webhooks.deliveries, methods=["GET"]),
        Route("/api/webhooks/{endpoint_id}/test", webhooks.send_test, methods=["POST"]),
        Route(
            "/api/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay",
            webhooks.replay,
            methods=["POST"],
        ),
        Route("/api/me", me.whoami, methods=["GET"]),
        Route("/api/stats", me.stats, methods=["GET"]),
        Route("/api/credits", me.credits_view, methods=["GET"]),
        Route("/api/accounts", me.accounts, methods=["GET"]),
        Route("/api/accounts/{account_id}", me.delete_account, methods=["DELETE"]),
        Route("/api/accounts/{account_id}/reveal", me.reveal_secret, methods=["POST"]),
        Route("/api/admin/reports", admin.reports, methods=["GET"]),
        Route("/api/admin/reports/{report_id}", admin.report, methods=["GET"]),
        Route("/api/admin/users", operator.create_user, methods=["POST"]),
        Route("/api/admin/users/{user_id}/credits", operator.grant_credits, methods=["POST"]),
        Route("/api/admin/users/{user_id}/tokens", operator.issue_token, methods=["POST"]),
        Route("/api/tokens", tokens.list_tokens, methods=["GET"]),
        Route("/api/tokens/{token_id}", tokens.revoke_token, methods=["DELETE"]),
    ]


def create_app(settings: Settings, enqueue: Enqueue | None = None) -> Starlette:
    """Build the app; the broker and database engine are created in the lifespan.

    `enqueue` sends a job's slice messages; by default through a broker built from
    the settings (tests pass their own).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        with contextlib.ExitStack() as resources:
            app.state.settings = settings
            app.state.sender = _sender(settings, enqueue or _broker_enqueue(settings, resources))
            resources.callback(app.state.sender.stop, settings.broker_timeout)
            app.state.database = Database.from_settings(
                settings, pool_size=settings.web_pool_size, application_name="tally-web"
            )
            resources.callback(app.state.database.dispose)
            app.state.live = LiveJobs(settings.direct_database_url, app.state.database.reader)
            app.state.live.start()
            resources.callback(app.state.live.stop)
            app.state.metrics = metrics.build_registry(app.state.database.sessions, app.state.live)
            app.state.export_counters = ExportCounters(app.state.metrics)
            yield

    table = routes()
    openapi.described_paths(table)  # a route without a description stops the app here
    authentication = TokenBackend(settings.auth_failures_per_minute, settings)
    app = Starlette(
        routes=table,
        middleware=[
            *_cors(settings),
            Middleware(SecurityHeaders),
            Middleware(
                AuthenticationMiddleware,
                backend=authentication,
                on_error=answer_failure,
            ),
            Middleware(RequestLogContext),
        ],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=lifespan,
    )
    app.state.authentication = authentication
    app.state.cursors = CursorBox(settings.fernet_key)
    return app


def _cors(settings: Settings) -> list[Middleware]:
    """Let the pages of the frontend's origins call the API (none unless configured)."""
    if not settings.cors_origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "If-None-Match"],
            expose_headers=["Location", "ETag", "Retry-After"],
            max_age=600,
        )
    ]


def _sender(settings: Settings, enqueue: Enqueue) -> TurnSender:
    """Start this process's turn sender; what waits longer than the sweep is left to it."""
    sender = TurnSender(enqueue, expiry=settings.intervals.stale_enqueue)
    sender.start()
    return sender


def _broker_enqueue(settings: Settings, resources: contextlib.ExitStack) -> Enqueue:
    """Send turn messages through a broker of this process, closed at shutdown."""
    broker = make_broker(settings)
    resources.callback(broker.close)
    return functools.partial(send_turns, broker)
