"""Every admin route refuses a request without an operator session, whatever method it serves:
``/admin/api/…`` answers 401 in the project's error shape, the HTML pages send the browser to the
login page — except the login page itself. Every route answers the methods it does not serve with a
405 in the project's shape (``Allow`` named), never Chalice's or API Gateway's own answer.
The routes are read from the app, so a new admin route is covered the day it is added."""

from __future__ import annotations

import json
from typing import Any

import pytest

import app as app_module

#: Reachable without a session by design: the sign-in page and its form post.
OPEN = {("/admin/login", "GET"), ("/admin/login", "POST")}


def _header(response: Any, name: str) -> str:
    return next(v for k, v in response.headers.items() if k.lower() == name)


def _concrete(path: str) -> str:
    return path.replace("{page}", "anything").replace("{store_id}", "demo-shanghai").replace("{token}", "x" * 32)


def _served(prefix: str) -> list[tuple[str, str]]:
    routes = []
    for path, methods in app_module.app.routes.items():
        if not path.startswith(prefix):
            continue
        for method, entry in methods.items():
            if not entry.view_name.startswith("method_not_allowed"):
                routes.append((path, method))
    return sorted(routes)


ADMIN = [r for r in _served("/admin") if r not in OPEN]


def test_the_admin_has_routes_to_guard() -> None:
    assert len(ADMIN) >= 5 and ("/admin/api/red/batch", "POST") in ADMIN


@pytest.mark.parametrize(("path", "method"), ADMIN, ids=[f"{m} {p}" for p, m in ADMIN])
def test_an_admin_route_without_a_session_is_refused(client: Any, path: str, method: str) -> None:
    api = path.startswith("/admin/api/")
    kind = "application/json" if api else "application/x-www-form-urlencoded"  # what the page's forms post
    if method == "GET":
        response = client.http.request(method, _concrete(path))
    else:
        body = b"{}" if api else b""
        response = client.http.request(method, _concrete(path), headers={"Content-Type": kind}, body=body)
    if api:
        assert response.status_code == 401, (path, response.status_code, response.body)
        assert json.loads(response.body)["error"]
    else:
        assert response.status_code in (303, 401), (path, response.status_code)
        if response.status_code == 303:
            assert _header(response, "location").startswith("/admin/login")
    assert b"dashboard" not in response.body.lower() or response.status_code == 303


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/admin", "/admin"),
        ("/admin/api/dashboard", "/admin/api/dashboard"),
        ("/admin/api/red/batch", "/admin/api/red/batch"),
        ("/callbacks/nuonuo/demo-shanghai", "/callbacks/nuonuo/{store_id}"),
    ],
)
def test_a_method_a_route_does_not_serve_is_a_405_in_the_projects_shape(client: Any, path: str, route: str) -> None:
    entries = app_module.app.routes[route]
    served = sorted(m for m, e in entries.items() if not e.view_name.startswith("method_not_allowed"))
    unserved = next(m for m in ("DELETE", "PUT", "PATCH") if m not in served)
    response = client.http.request(unserved, path)
    assert response.status_code == 405, response.body
    assert json.loads(response.body)["error"] == "method_not_allowed"
    assert _header(response, "allow") == ", ".join(m for m in app_module.METHODS if m in served)
