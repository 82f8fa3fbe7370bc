"""``/admin``: operators sign in (``/admin/login``, ``/admin/logout``) and see the dashboard.

Every route but the login page needs a session (:func:`chalicelib.routes.auth.require_operator`):
without one an HTML route redirects (303) to ``/admin/login`` and an ``/admin/api/…`` route answers
401 JSON. Form posts carry a CSRF token: the session's (logout and every later admin form), or, for
the login form itself, a double-submit cookie set when the form is shown. A session sees only its
operator's stores; another store is answered 404, as if it did not exist.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from chalice import Blueprint, Response

from chalicelib.domain.counters import yuan
from chalicelib.routes.auth import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    AuthRequired,
    CsrfRefused,
    cookie_header,
    cookies,
    form,
    json_response,
    refusal,
    require_csrf,
    require_operator,
    route,
)
from chalicelib.services.auth import LoginLocked, LoginRefused, NotVisible, Operator, csrf_ok

if TYPE_CHECKING:  # the dashboard's modules are imported on first use (cold starts)
    from chalicelib.services.dashboard import DashboardView

bp = Blueprint(__name__)
FORM = ["application/x-www-form-urlencoded"]
LOGIN_FORM_SECONDS = 3600


def _html(status: int, body: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body=body,
        status_code=status,
        headers={
            "Content-Type": "text/html; charset=utf-8",
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff",
            **(headers or {}),
        },
    )


def _login_page(status: int = 200, *, error: str = "", name: str = "") -> Response:
    from chalicelib.routes import admin_view  # Jinja2 is imported by the admin pages only (cold starts)

    token = secrets.token_urlsafe(24)
    page = admin_view.render("login.html", csrf=token, error=error, name=name)
    return _html(status, page, {"Set-Cookie": cookie_header(LOGIN_COOKIE, token, max_age=LOGIN_FORM_SECONDS)})


def _days(params: dict[str, str]) -> int:
    try:
        return max(1, min(int(params.get("days", "14")), 92))
    except ValueError:
        return 14


def _view(operator: Operator, params: dict[str, str]) -> tuple[DashboardView, int]:
    from chalicelib import wiring

    days = _days(params)
    return wiring.dashboard().view(operator, store=params.get("store") or None, days=days), days


def _not_found() -> Response:
    return json_response(404, {"error": "not_found", "message": "未找到", "message_en": "not found"})


# --- sign in / out ------------------------------------------------------------------------------
@route(bp, "/admin/login", methods=["GET"])
def login_form() -> Response:
    return _login_page()


@route(bp, "/admin/login", methods=["POST"], content_types=FORM)
def login() -> Response:
    from chalicelib import wiring

    request = bp.current_request
    fields = form(request)
    name = fields.get("name", "")
    if not csrf_ok(cookies(request).get(LOGIN_COOKIE, ""), fields.get("csrf")):
        return _login_page(403, error="表单已过期，请重试 · the form expired: try again", name=name)
    try:
        token, _operator = wiring.operator_auth().login(name, fields.get("password", ""))
    except LoginLocked as exc:
        page = _login_page(429, error=f"尝试次数过多，请 {exc.retry_after} 秒后再试 · too many attempts", name=name)
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    except LoginRefused:
        return _login_page(401, error="用户名或密码错误 · wrong name or password", name=name)
    seconds = wiring.operator_auth().session_seconds  # the session item expires with it (expires_at)
    return Response(
        body="",
        status_code=303,
        headers={
            "Location": "/admin",
            "Cache-Control": "no-store",
            "Set-Cookie": [
                cookie_header(SESSION_COOKIE, token, max_age=seconds),
                cookie_header(LOGIN_COOKIE, "", max_age=0),
            ],
        },
    )


@route(bp, "/admin/logout", methods=["POST"], content_types=FORM)
def logout() -> Response:
    from chalicelib import wiring

    request = bp.current_request
    try:
        operator = require_operator(request)
        require_csrf(operator, form(request))
    except AuthRequired:
        return refusal("/admin/logout")
    except CsrfRefused:
        return _html(403, "<p>CSRF token mismatch · 表单校验失败</p>")
    wiring.operator_auth().logout(cookies(request).get(SESSION_COOKIE))
    return Response(
        body="",
        status_code=303,
        headers={"Location": "/admin/login", "Set-Cookie": cookie_header(SESSION_COOKIE, "", max_age=0)},
    )


# --- the dashboard --------------------------------------------------------------------------------
@route(bp, "/admin", methods=["GET"])
def dashboard() -> Response:
    request = bp.current_request
    try:
        operator = require_operator(request)
        view, days = _view(operator, request.query_params or {})
    except AuthRequired:
        return refusal("/admin")
    except NotVisible:
        return _html(404, "<p>未找到 · not found</p>")
    from chalicelib.routes import admin_view

    return _html(200, admin_view.dashboard_page(view, csrf=operator.csrf, days=days))


@route(bp, "/admin/api/dashboard", methods=["GET"])
def dashboard_api() -> Response:
    request = bp.current_request
    try:
        operator = require_operator(request)
        view, days = _view(operator, request.query_params or {})
    except AuthRequired:
        return refusal("/admin/api/dashboard")
    except NotVisible:
        return _not_found()
    return json_response(200, view_json(view, days))


@route(bp, "/admin/api/me", methods=["GET"])
def me() -> Response:
    try:
        operator = require_operator(bp.current_request)
    except AuthRequired:
        return refusal("/admin/api/me")
    stores = ["*"] if operator.all_stores else sorted(operator.stores)
    body = {"operator": operator.name, "stores": stores, "expires_at": int(operator.expires_at), "csrf": operator.csrf}
    return json_response(200, body)


@route(bp, "/admin/{page}", methods=["GET", "POST"], content_types=["*/*"])
def other_admin_page(page: str) -> Response:
    """Any other ``/admin/…`` path: refused without a session, else 404."""
    try:
        require_operator(bp.current_request)
    except AuthRequired:
        return refusal(f"/admin/{page}")
    return _not_found()


@route(bp, "/admin/api/{page}", methods=["GET", "POST"], content_types=["*/*"])
def other_admin_api(page: str) -> Response:
    try:
        require_operator(bp.current_request)
    except AuthRequired:
        return refusal(f"/admin/api/{page}")
    return _not_found()


def view_json(view: DashboardView, days: int) -> dict[str, Any]:
    def counts(d: Any) -> dict[str, Any]:
        return {
            "day": d.day,
            "issued": d.count("issued"),
            "rejected": d.count("rejected"),
            "failed": d.count("failed"),
            "blocked": d.count("blocked"),
            "amount": str(yuan(d.fen_issued)),
        }

    return {
        "operator": view.operator,
        "scope": view.scope,
        "days": days,
        "series": [counts(d) for d in view.days],
        "total": counts(view.total),
        "exception_ratio": None if view.ratio is None else str(view.ratio),
        "latency_p50_seconds": view.p50,
        "latency_p95_seconds": view.p95,
        "tax_share": [{"tax_code": c, "lines": n, "amount": str(yuan(f))} for c, n, f in view.tax_share],
        "sku_share": [
            {"sku": s.sku, "lines": s.lines, "amount": str(yuan(s.fen)), "share": str(s.share)} for s in view.sku_share
        ],
        "stores": [
            {"store_id": s.store_id, "name": s.name, **counts(s.total), "exception_ratio": str(s.ratio or "")}
            for s in view.stores
        ],
        "open_items": [asdict(i) for i in view.open_items],
    }
