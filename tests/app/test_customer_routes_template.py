"""The link routes in the API definition Chalice deploys: literal ``/i`` beside the catch-alls.

API Gateway matches the most specific resource (a literal segment before a ``{variable}``), and it
refuses a resource tree in which two siblings are variables of different names; ``chalice local``
tries routes in sorted order (``/i/…`` before ``/{…``). Both are checked here on the generated API.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="module")
def paths() -> dict[str, Any]:
    from chalice.deploy.swagger import TemplatedSwaggerGenerator

    import app as app_module

    swagger: dict[str, Any] = TemplatedSwaggerGenerator().generate_swagger(app_module.app)
    return swagger["paths"]


def test_the_link_routes_are_deployed_with_every_method(paths: dict[str, Any]) -> None:
    for path in ("/i/{token}", "/i/{token}/pdf", "/i/{token}/title"):
        assert set(paths[path]) == {"get", "post", "put", "patch", "delete", "head", "options"}, path
    assert "/{p1}/{p2}" in paths and "/{p1}/{p2}/{p3}" in paths


def test_no_two_sibling_resources_are_variables_of_different_names(paths: dict[str, Any]) -> None:
    children: dict[tuple[str, ...], set[str]] = {}
    for path in paths:
        parts = tuple(p for p in path.split("/") if p)
        for depth in range(len(parts)):
            children.setdefault(parts[:depth], set()).add(parts[depth])
    for parent, names in children.items():
        variables = {n for n in names if n.startswith("{")}
        assert len(variables) <= 1, (parent, variables)
    assert {"i", "{p1}"} <= children[()]  # /i is a literal sibling of the catch-all


def test_chalice_local_matches_the_literal_route_first() -> None:
    from chalice.local import RouteMatcher

    import app as app_module

    matcher = RouteMatcher(list(app_module.app.routes))
    token = "A" * 32
    assert matcher.match_route(f"/i/{token}").route == "/i/{token}"
    assert matcher.match_route(f"/i/{token}/pdf").route == "/i/{token}/pdf"
    assert matcher.match_route(f"/i/{token}/title").route == "/i/{token}/title"
    assert matcher.match_route(f"/x/{token}").route == "/{p1}/{p2}"
