"""The dashboard: one HTML page and its static files, shipped inside the package."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


def index(request: Request) -> Response:
    """GET /: the dashboard page (it signs in with a token kept in session storage)."""
    return FileResponse(STATIC / "index.html", media_type="text/html")


def static_files() -> Mount:
    """GET /static/<path>: the page's CSS and JavaScript."""
    return Mount("/static", app=StaticFiles(directory=STATIC), name="static")
