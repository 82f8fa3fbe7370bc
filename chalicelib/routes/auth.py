"""The authentication dependencies of the HTTP routes: an operator's session, a store's API key.

``require_operator(request)`` returns the signed-in :class:`Operator` or raises :class:`AuthRequired`
(the caller answers a redirect to the login page for HTML, 401 JSON for an API route — see
:func:`refusal`); ``require_store_key(request, store_id)`` returns nothing or raises ``Unauthorized``
(401) / ``NotFound`` (404, a key of another store). Both read their services from the composition
root (``chalicelib.wiring``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from typing import Any, TypeVar, cast
from urllib.parse import parse_qs

from chalice import Blueprint, Response

from chalicelib.config import settings
from chalicelib.domain.errors import NotFound
from chalicelib.services.auth import KeyCheck, Operator, Unauthorized, csrf_ok

SESSION_COOKIE = "einvoice_session"
LOGIN_COOKIE = "einvoice_login"  # the login form's double-submit CSRF token (before any session)
COOKIE_PATH = "/admin"
LOGIN_PATH = "/admin/login"
API_PREFIX = "/admin/api/"


F = TypeVar("F", bound=Callable[..., Response])


def route(bp: Blueprint, path: str, **options: Any) -> Callable[[F], F]:
    """``bp.route`` typed (Chalice ships no type information; mypy refuses untyped decorators)."""
    return cast(Callable[[F], F], bp.route(path, **options))


class AuthRequired(Exception):
    """No valid session (absent, unknown, expired)."""


class CsrfRefused(Exception):
    """A form post whose CSRF token does not match its session's (or the login form's cookie)."""


def cookies(request: Any) -> dict[str, str]:
    raw = (request.headers or {}).get("cookie", "")
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return {}
    return {k: m.value for k, m in jar.items()}


def form(request: Any) -> dict[str, str]:
    body = (request.raw_body or b"").decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def bearer(request: Any) -> str | None:
    headers = request.headers or {}
    value = headers.get("authorization", "")
    if value.lower().startswith("bearer "):
        return value[7:].strip() or None
    return headers.get("x-api-key") or None


def cookie_header(name: str, value: str, *, max_age: int) -> str:
    parts = [f"{name}={value}", f"Path={COOKIE_PATH}", "HttpOnly", "SameSite=Strict", f"Max-Age={max_age}"]
    if settings().stage != "local":
        parts.append("Secure")
    return "; ".join(parts)


def require_operator(request: Any) -> Operator:
    from chalicelib import wiring

    operator = wiring.operator_auth().session(cookies(request).get(SESSION_COOKIE))
    if operator is None:
        raise AuthRequired()
    return operator


def require_csrf(operator: Operator, fields: dict[str, str], request: Any = None) -> None:
    """The session's CSRF token, from the form's ``csrf`` field or (a JSON post of the admin API)
    the ``X-CSRF-Token`` header of ``request``; CsrfRefused otherwise."""
    presented = fields.get("csrf") or ((request.headers or {}).get("x-csrf-token") if request is not None else None)
    if not csrf_ok(operator.csrf, presented):
        raise CsrfRefused()


def require_store_key(request: Any, store_id: str) -> None:
    from chalicelib import wiring

    verdict = wiring.store_keys().check(store_id, bearer(request))
    if verdict == KeyCheck.OTHER_STORE:
        raise NotFound("no such order")
    if verdict != KeyCheck.VALID:
        raise Unauthorized("missing or invalid API key")


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        body=json.dumps(body, ensure_ascii=False),
        status_code=status,
        headers={"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store", **(headers or {})},
    )


def refusal(path: str) -> Response:
    """The answer without a session: 401 JSON for ``/admin/api/…``, else a redirect to the login page."""
    if path.startswith(API_PREFIX):
        return json_response(
            401,
            {"error": "unauthorized", "message": "请先登录", "message_en": "sign in first: no valid session"},
        )
    return Response(body="", status_code=303, headers={"Location": LOGIN_PATH, "Cache-Control": "no-store"})
