"""The route table is the one list of routes: each is described once, by its endpoint."""

from __future__ import annotations

import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from web.app import routes
from web.contract.openapi import (
    OPERATIONS,
    UndescribedRoute,
    described_paths,
    route_keys,
    route_operations,
)


def undescribed(request: Request) -> Response:
    return PlainTextResponse("no description")


def test_every_route_of_the_table_is_described() -> None:
    paths = described_paths(routes())
    assert {(p, m) for p, methods in paths.items() for m in methods} == set(
        route_operations(routes())
    )


def test_every_description_belongs_to_a_route() -> None:
    assert set(OPERATIONS) == {key for _, _, key in route_keys(routes())}


@pytest.mark.parametrize(
    "extra",
    [
        Route("/api/undescribed", undescribed, methods=["GET"]),
        Mount("/assets", app=PlainTextResponse("no description"), name="assets"),
    ],
)
def test_a_route_without_a_description_fails(extra: Route | Mount) -> None:
    with pytest.raises(UndescribedRoute, match=r"undescribed|assets"):
        described_paths([*routes(), extra])


def test_an_alias_path_is_described_as_its_first_path() -> None:
    paths = described_paths(routes())
    assert paths["/api/jobs/{job_id}"]["get"]["summary"] == "Same as /api/job/{job_id}."
