"""The customer's routes (a Chalice Blueprint, registered in ``app.py``): the invoice link page.

``GET /i/{token}`` the page · ``GET /i/{token}/pdf`` 302 to a fresh presigned URL of the PDF (202
"being prepared" while it is not there yet) · ``GET|POST /i/{token}/title`` the buyer's own company
title. Every answer is HTML in the project's tone with the security headers of
:func:`chalicelib.web.render.headers`: an unknown or forged token is a 404 page, an expired or
revoked one a 410 page, too many requests from one IP a 429 page, an unexpected failure a 500 page
— never a stack trace. Other methods are answered 405 (registered, as ``app.py`` does, so that API
Gateway hands them to us). Literal segments win over ``app.py``'s catch-all ``/{p1}/{p2}…`` routes
in API Gateway (the most specific path matches) and in ``chalice local`` (its matcher tries routes in
sorted order, and ``/i/…`` sorts before ``/{…``).
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import parse_qs

from aws_lambda_powertools import Logger
from chalice import Blueprint, Response

customer = Blueprint(__name__)
logger = Logger(child=True)
F = TypeVar("F", bound=Callable[..., Response])


def route(path: str, **options: Any) -> Callable[[F], F]:
    """``customer.route`` with a type (Chalice's decorators are untyped)."""
    return cast(Callable[[F], F], customer.route(path, **options))


PAGE = "/i/{token}"
PDF = "/i/{token}/pdf"
TITLE = "/i/{token}/title"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
FORM_TYPES = ["application/x-www-form-urlencoded"]
#: The largest title form body read (bytes): two short fields and a token.
MAX_FORM_BYTES = 4096

#: status → (heading zh/en, text zh/en)
ERRORS: dict[int, tuple[tuple[str, str], tuple[str, str]]] = {
    404: (
        ("找不到该发票链接", "Link not found"),
        (
            "请检查链接是否完整，或联系商家重新发送。",
            "Check that the link is complete, or ask the shop to send it again.",
        ),
    ),
    405: (("不支持该操作", "Not allowed"), ("请使用浏览器直接打开链接。", "Open the link in a browser.")),
    429: (
        ("请求过于频繁", "Too many requests"),
        ("请稍后再试。", "Please wait a moment and try again."),
    ),
    500: (
        ("服务暂时不可用", "Something went wrong"),
        ("请稍后刷新重试；如仍有问题请联系商家。", "Reload in a moment; if it persists, contact the shop."),
    ),
    503: (
        ("服务暂时不可用", "Temporarily unavailable"),
        ("请稍后刷新重试。", "Reload in a moment."),
    ),
}
GONE: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "expired": (
        ("发票链接已过期", "This link has expired"),
        (
            "为保护您的信息，发票链接在一段时间后失效。请联系商家重新发送。",
            "Invoice links expire to protect your data. Ask the shop to send a new one.",
        ),
    ),
    "revoked": (
        ("发票链接已失效", "This link was withdrawn"),
        (
            "商家已撤销该链接。如需发票，请联系商家。",
            "The shop has withdrawn this link. Contact the shop for your invoice.",
        ),
    ),
}


def _wiring() -> Any:
    from chalicelib import wiring

    return wiring


def _html(status: int, body: str, extra: dict[str, str] | None = None) -> Response:
    from chalicelib.web.render import headers

    return Response(body=body, status_code=status, headers=headers(extra))


def error_page(status: int, which: tuple[tuple[str, str], tuple[str, str]] | None = None) -> Response:
    from chalicelib.web.render import render

    heading, text = which or ERRORS[status]
    return _html(status, render("error.html", status=status, heading=heading, text=text))


def _client_ip() -> str:
    request = customer.current_request
    identity = (request.context or {}).get("identity") or {}
    return str(identity.get("sourceIp") or "unknown")


def guarded(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Rate limit first; then the handler; any failure becomes an HTML page, never a trace."""

    @functools.wraps(handler)
    def wrapper(**params: str) -> Response:
        from chalicelib.domain.errors import InfrastructureUnavailable

        now = time.time()
        try:
            limit = _wiring().link_rate_limit()
            if not limit.allow(_client_ip(), now):
                return _too_many(limit.retry_after(now))
            return handler(now=now, **params)
        except InfrastructureUnavailable:
            logger.warning("customer page: AWS unavailable")
            response = error_page(503)
            response.headers["Retry-After"] = "30"
            return response
        except Exception:
            logger.exception("customer page failed")
            return error_page(500)

    return wrapper


def _too_many(retry_after: int) -> Response:
    response = error_page(429)
    response.headers["Retry-After"] = str(retry_after)
    return response


def _resolve(token: str, now: float) -> Any:
    """The live link, or the refusal's page."""
    from chalicelib.services.links import LinkRefusal

    found = _wiring().links().resolve(token, now)
    if isinstance(found, LinkRefusal):
        if found.http_status == 410:
            return error_page(410, GONE[found.reason.value])
        return error_page(404)
    return found


# --- the page ------------------------------------------------------------------------------------
@route(PAGE, methods=["GET"])
@guarded
def invoice_page(token: str, now: float) -> Response:
    from chalicelib.web.render import render

    link = _resolve(token, now)
    if isinstance(link, Response):
        return link
    page = _wiring().customer_page().page(link)
    if page is None:
        return error_page(404)
    done = (customer.current_request.query_params or {}).get("done", "")
    return _html(200, render("invoice.html", page=page, base=f"/i/{token}", notice=NOTICES.get(done)))


@route(PDF, methods=["GET"])
@guarded
def invoice_pdf(token: str, now: float) -> Response:
    from chalicelib.web.render import render

    link = _resolve(token, now)
    if isinstance(link, Response):
        return link
    url = _wiring().customer_page().pdf_url(link)
    if url is None:
        heading = ("发票文件正在生成", "The PDF is being prepared")
        text = ("请一分钟后再试。", "Try again in a minute.")
        body = render("error.html", status=202, heading=heading, text=text)
        return _html(202, body, {"Retry-After": "30"})
    return _html(302, "", {"Location": url})


# --- the buyer's own title -----------------------------------------------------------------------
#: ?done=… after a title was submitted (POST → 303 → the page says what happened)
NOTICES: dict[str, tuple[str, str]] = {
    "applied": ("已收到您的抬头，发票将按此抬头开具。", "Received: the invoice will be issued to your company title."),
    "change_requested": (
        "已提交换开申请，商家将红冲原发票并按新抬头重开。",
        "Reissue requested: the shop will reverse the invoice and issue a new one to your company.",
    ),
    "recorded": ("已记录您的抬头申请，商家将处理。", "Recorded: the shop will handle your request."),
}


@route(TITLE, methods=["GET"])
@guarded
def title_form(token: str, now: float) -> Response:
    link = _resolve(token, now)
    if isinstance(link, Response):
        return link
    page = _wiring().customer_page().page(link)
    if page is None:
        return error_page(404)
    if not page.title_form_open:
        return _redirect(token, None)
    return _title_page(200, token, page, link, now=now, form={"title": "", "tax_id": ""}, errors={})


@route(TITLE, methods=["POST"], content_types=FORM_TYPES)
@guarded
def title_submit(token: str, now: float) -> Response:
    from chalicelib.services.title_request import Outcome, TitleForm

    link = _resolve(token, now)
    if isinstance(link, Response):
        return link
    page = _wiring().customer_page().page(link)
    if page is None:
        return error_page(404)
    fields = _form_fields()
    if not link.form_token_ok(fields.get("form_token", ""), now):
        expired = (
            ("表单已过期", "The form has expired"),
            ("请返回发票页面重新填写。", "Go back to the invoice page and fill in the form again."),
        )
        return error_page(403, expired)
    if not page.title_form_open:
        return _redirect(token, None)
    form = TitleForm.of(fields.get("title", ""), fields.get("tax_id", ""))
    result = _wiring().title_requests().submit(link, form, now=now)
    if result.outcome is Outcome.INVALID:
        shown = {"title": form.title, "tax_id": form.tax_id}
        return _title_page(422, token, page, link, now=now, form=shown, errors=result.errors)
    if result.outcome in (Outcome.REFUSED, Outcome.CONFLICT):
        return _redirect(token, None)
    return _redirect(token, result.outcome.value)


def _title_page(
    status: int, token: str, page: Any, link: Any, *, now: float, form: dict[str, str], errors: dict[str, Any]
) -> Response:
    from chalicelib.web.render import render

    body = render(
        "title.html", page=page, base=f"/i/{token}", form=form, errors=errors, form_token=link.form_token(now)
    )
    return _html(status, body)


def _redirect(token: str, done: str | None) -> Response:
    location = f"/i/{token}" + (f"?done={done}" if done else "")
    return _html(303, "", {"Location": location})


def _form_fields() -> dict[str, str]:
    request = customer.current_request
    raw = request.raw_body or b""
    if len(raw) > MAX_FORM_BYTES:
        return {}
    text = raw.decode("utf-8", "replace")
    try:
        parsed = parse_qs(text, keep_blank_values=True, max_num_fields=10)
    except ValueError:  # more fields than the form has: not our form
        return {}
    return {k: v[0] for k, v in parsed.items() if v}


# --- every other method --------------------------------------------------------------------------
def _refuse(path: str, allowed: tuple[str, ...]) -> None:
    def method_not_allowed(**_: str) -> Response:
        response = error_page(405)
        response.headers["Allow"] = ", ".join(allowed)
        return response

    method_not_allowed.__name__ = "customer_not_allowed_" + re.sub(r"\W+", "_", path).strip("_")
    route(path, methods=[m for m in METHODS if m not in allowed], content_types=["*/*"])(method_not_allowed)


_refuse(PAGE, ("GET",))
_refuse(PDF, ("GET",))
_refuse(TITLE, ("GET", "POST"))
