"""The polling benchmark's reference: bare Starlette answering one constant JSON body."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# Shaped like a job status answer, so both endpoints send bodies of about the same size.
CONSTANT = {
    "id": "00000000-0000-0000-0000-000000000000",
    "status": "completed",
    "requested": 5000,
    "successful": 4990,
    "failures": 10,
    "progress": 1.0,
    "provider": "sandbox",
    "created_at": "2024-01-01T00:00:00+00:00",
    "started_at": "2024-01-01T00:00:01+00:00",
    "finished_at": "2024-01-01T00:00:09+00:00",
    "error": None,
}


async def constant(request: Request) -> Response:
    """Answer the same JSON every time."""
    return JSONResponse(CONSTANT)


app = Starlette(routes=[Route("/constant", constant)])
