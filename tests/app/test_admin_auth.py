"""/admin: operators' sign-in, sessions (hashed, expiring), logout, CSRF, rate limiting, refusals."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.support.admin_client import FORM, PASSWORD, add_operator, cli, cookie_of, csrf_of, header, login, session_of


@pytest.fixture()
def admin(client: Any) -> Any:
    from chalicelib import wiring

    wiring.reset()
    add_operator("hq", "--all")
    add_operator("sh-manager", "--stores", "demo-shanghai")
    yield client
    wiring.reset()


def test_unauthenticated_admin_is_refused(admin: Any) -> None:
    for path in ("/admin", "/admin/", "/admin/anything"):
        r = admin.http.get(path)
        assert r.status_code == 303 and header(r, "location") == "/admin/login", path
    for path in ("/admin/api/dashboard", "/admin/api/me", "/admin/api/nothing"):
        r = admin.http.get(path)
        assert r.status_code == 401, path
        body = json.loads(r.body)
        assert body["error"] == "unauthorized" and body["message"] and body["message_en"]
    forged = admin.http.get("/admin/api/me", headers={"Cookie": "einvoice_session=forged"})
    assert forged.status_code == 401


def test_login_sets_a_strict_httponly_cookie_and_logout_ends_it(admin: Any) -> None:
    r = login(admin, "hq")
    assert r.status_code == 303 and header(r, "location") == "/admin"
    cookie = header(r, "set-cookie")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    assert "Max-Age=28800" in cookie
    assert "Secure" not in cookie  # the local stage; every other stage adds Secure (routes/auth.py)
    token = cookie_of(r, "einvoice_session")
    assert token
    me = admin.http.get("/admin/api/me", headers={"Cookie": f"einvoice_session={token}"})
    assert json.loads(me.body)["operator"] == "hq" and json.loads(me.body)["stores"] == ["*"]
    csrf = csrf_of(admin, token)
    out = admin.http.post(
        "/admin/logout", headers={**FORM, "Cookie": f"einvoice_session={token}"}, body=urlencode({"csrf": csrf})
    )
    assert out.status_code == 303 and "Max-Age=0" in header(out, "set-cookie")
    assert admin.http.get("/admin/api/me", headers={"Cookie": f"einvoice_session={token}"}).status_code == 401


def test_logout_needs_the_csrf_token(admin: Any) -> None:
    token = session_of(admin, "hq")
    for body in ("", urlencode({"csrf": "wrong"})):
        r = admin.http.post("/admin/logout", headers={**FORM, "Cookie": f"einvoice_session={token}"}, body=body)
        assert r.status_code == 403
    assert admin.http.get("/admin/api/me", headers={"Cookie": f"einvoice_session={token}"}).status_code == 200


def test_login_form_needs_its_csrf_cookie(admin: Any) -> None:
    body = urlencode({"name": "hq", "password": PASSWORD, "csrf": "made-up"})
    r = admin.http.post("/admin/login", headers={**FORM, "Cookie": "einvoice_login=other"}, body=body)
    assert r.status_code == 403 and not cookie_of(r, "einvoice_session")


def test_wrong_password_and_unknown_name_answer_alike(admin: Any) -> None:
    wrong = login(admin, "hq", "not the password")
    unknown = login(admin, "nobody", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert not cookie_of(wrong, "einvoice_session")
    assert "用户名或密码错误" in wrong.body.decode() and "用户名或密码错误" in unknown.body.decode()


def test_login_attempts_are_rate_limited_per_operator(admin: Any) -> None:
    from chalicelib.services.auth import LOGIN_FAILURES_ALLOWED

    for _ in range(LOGIN_FAILURES_ALLOWED):
        assert login(admin, "sh-manager", "nope nope nope").status_code == 401
    locked = login(admin, "sh-manager")  # even the right password, while the window lasts
    assert locked.status_code == 429 and int(header(locked, "retry-after")) > 0
    assert login(admin, "hq").status_code == 303  # another operator is not locked


def test_sessions_expire_and_are_stored_hashed(admin: Any) -> None:
    from chalicelib import wiring
    from chalicelib.adapters import aws
    from chalicelib.config import settings
    from chalicelib.services.auth import sha256_hex

    token = session_of(admin, "hq")
    items = json.dumps(aws.client("dynamodb").scan(TableName=settings().ledger_table)["Items"], default=str)
    assert token not in items and sha256_hex(token) in items
    assert PASSWORD not in items and "scrypt$" in items
    auth = wiring.operator_auth()
    operator = auth.session(token)
    assert operator is not None and operator.expires_at - auth.clock() <= 8 * 3600
    real = auth.clock
    auth.clock = lambda: real() + 8 * 3600 + 1  # the composition root's clock, eight hours on
    try:
        assert admin.http.get("/admin/api/me", headers={"Cookie": f"einvoice_session={token}"}).status_code == 401
        assert admin.http.get("/admin", headers={"Cookie": f"einvoice_session={token}"}).status_code == 303
    finally:
        auth.clock = real


def test_operator_cli_refuses_bad_input(admin: Any) -> None:
    assert cli("operators", "add", "x1", input=PASSWORD + "\n").exit_code == 2  # neither --stores nor --all
    assert cli("operators", "add", "x1", "--stores", "no-such-store", input=PASSWORD + "\n").exit_code == 2
    assert cli("operators", "add", "x1", "--all", input="short\n").exit_code == 2


def test_require_csrf_takes_the_form_field_or_the_header(admin: Any) -> None:
    from types import SimpleNamespace

    from chalicelib.routes.auth import CsrfRefused, require_csrf, require_operator

    token = session_of(admin, "hq")
    me = json.loads(admin.http.get("/admin/api/me", headers={"Cookie": f"einvoice_session={token}"}).body)
    operator = require_operator(SimpleNamespace(headers={"cookie": f"einvoice_session={token}"}))
    assert operator.name == "hq" and operator.may_see("any-store")
    require_csrf(operator, {"csrf": me["csrf"]})
    require_csrf(operator, {}, SimpleNamespace(headers={"x-csrf-token": me["csrf"]}))
    with pytest.raises(CsrfRefused):
        require_csrf(operator, {}, SimpleNamespace(headers={"x-csrf-token": "forged"}))
    with pytest.raises(CsrfRefused):
        require_csrf(operator, {})
