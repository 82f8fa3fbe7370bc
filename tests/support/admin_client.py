"""Helpers of the /admin tests: operators made by the CLI, a signed-in session through the login form."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from typer.testing import CliRunner

PASSWORD = "correct horse battery"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF field on the page"
    return found.group(1)


def cli(*args: str, input: str | None = None) -> Any:
    import infra.cli_app

    return CliRunner().invoke(infra.cli_app.application(), list(args), input=input)


def add_operator(name: str, *scope: str) -> None:
    run = cli("operators", "add", name, *scope, input=PASSWORD + "\n")
    assert run.exit_code == 0, run.output
    assert PASSWORD not in run.output


def header(response: Any, name: str) -> str:
    """A response header by its name in any case (the test client keeps the route's spelling); a
    multi-value header (Set-Cookie) joined with ", "."""
    found = [v for k, v in response.headers.items() if k.lower() == name]
    return ", ".join(", ".join(v) if isinstance(v, list) else v for v in found)


def cookie_of(response: Any, name: str) -> str | None:
    raw = header(response, "set-cookie")
    found = re.search(rf"{name}=([^;,]*)", raw)
    return found.group(1) if found else None


def login(client: Any, name: str, password: str = PASSWORD) -> Any:
    form = client.http.get("/admin/login")
    csrf = _csrf(form.body.decode())
    cookie = f"einvoice_login={cookie_of(form, 'einvoice_login')}"
    body = urlencode({"name": name, "password": password, "csrf": csrf})
    return client.http.post("/admin/login", headers={**FORM, "Cookie": cookie}, body=body)


def session_of(client: Any, name: str) -> str:
    r = login(client, name)
    assert r.status_code == 303, r.body
    token = cookie_of(r, "einvoice_session")
    assert token
    return token


def csrf_of(client: Any, token: str) -> str:
    page = client.http.get("/admin", headers={"Cookie": f"einvoice_session={token}"})
    return _csrf(page.body.decode())
