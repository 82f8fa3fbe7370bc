"""Nuonuo open-platform wire format, sans-IO: signing, the envelope, number formats and error mapping.

Every Nuonuo call is ``POST {endpoint}?senid=&nonce=&timestamp=&appkey=`` with the headers
``Content-Type``, ``X-Nuonuo-Sign``, ``accessToken``, ``userTax`` and ``method`` and a compact UTF-8
JSON body. The signature (official SDK behaviour, ``shared/reference/tax-platforms.md``) is::

    Base64( HMAC-SHA1( appSecret,
        "a=services&l=v1&p=open&k={appKey}&i={senid}&n={nonce}&t={timestamp}&f={body}" ) )

computed over the exact body bytes that are sent. Replies are ``{"code", "describe", "result"}``
with ``E0000`` for success; :func:`unwrap` returns ``result`` or raises the ``TaxError`` the code
maps to (table in ``docs/nuonuo.md``).

Nothing here logs, and no secret or token ever appears in an exception message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from chalicelib.domain.china_time import CHINA_TZ
from chalicelib.domain.errors import (
    AmbiguousTaxError,
    AuthTaxError,
    DuplicateTaxError,
    PermanentTaxError,
    RetryableTaxError,
    TaxError,
)
from chalicelib.domain.money import q2, q8
from chalicelib.taxapi.base import HttpRequest, HttpResponse

SUCCESS = "E0000"
SERVICES_PATH = "/open/v1/services"
#: The path segments the signature names: ``/open/v1/services`` → p=open, l=v1, a=services.
SIGN_PREFIX = "a=services&l=v1&p=open"
CONTENT_TYPE = "application/json;charset=utf-8"
#: China has had no daylight saving since 1991; a fixed offset avoids depending on tzdata in Lambda.

#: Gateway codes for credentials / tokens / signatures (070304–070307 also cover an expired token).
AUTH_CODES = frozenset({"E9338", "E9301", "E9302", "070101", "070304", "070305", "070306", "070307", "070601"})
#: The token-related subset: a cached token is refreshed once when one of these comes back.
TOKEN_CODES = frozenset({"070304", "070305", "070306", "070307"})
DUPLICATE_CODES = frozenset({"E9106"})
NOT_FOUND_CODES = frozenset({"E9500"})
RETRY_CAP_CODES = frozenset({"E9613"})
#: Every error code Nuonuo documents (its official texts, and the gateway's E4000): a refusal under one
#: of these is a real refusal. Any other code is a reply we cannot classify: Ambiguous (the caller queries before
#: it could send anything again), never Permanent — a create may have been acted on.
DOCUMENTED_CODES = frozenset({
    *(f"E91{n:02d}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20)),
    *(f"E91{n:02d}" for n in range(21, 32)),
    "E4000", "E9138", "E9154", "E9300", "E9301", "E9302", "E9306", "E9307", "E9338", "E9500", "E9512", "E9520",
    "E9522", "E9529", "E9540", "E9545", "E9601", "E9607", "E9611", "E9613", "E9999",
})  # fmt: skip
#: Words of a "system busy / throttled / try later" describe text (no dedicated code is documented).
_BUSY_WORDS = ("系统繁忙", "稍后重试", "请稍后", "频繁", "限流", "服务繁忙", "系统异常", "超时")

#: The field each documented rule error blames (Nuonuo's own field names, request paths).
CODE_FIELDS: Mapping[str, str] = {
    "E9101": "order.invoiceType",
    "E9102": "order.invoiceNum",
    "E9103": "order.invoiceNum",
    "E9104": "order.email",
    "E9105": "order.invoiceDetail.goodsName",
    "E9106": "order.orderNo",
    "E9107": "order.proxyInvoiceFlag",
    "E9108": "order.invoiceDetail.taxIncludedAmount",
    "E9110": "order.invoiceDetail.invoiceLineProperty",
    "E9111": "order.invoiceDetail.num",
    "E9112": "order.invoiceDetail.taxRate",
    "E9113": "order.buyerAddress",
    "E9114": "order.invoiceDetail.num",
    "E9115": "order.buyerTel",
    "E9116": "order.invoiceDetail.num",
    "E9117": "order.buyerName",
    "E9118": "order.buyerTaxNum",
    "E9119": "order.invoiceDetail.num",
    "E9120": "order.buyerAccount",
    "E9121": "order.invoiceDetail.goodsCode",
    "E9122": "order.invoiceDetail",
    "E9123": "order.invoiceDetail.price",
    "E9124": "order.invoiceDetail.taxIncludedAmount",
    "E9125": "order.invoiceDetail.taxIncludedAmount",
    "E9126": "order.invoiceDetail.taxExcludedAmount",
    "E9127": "order.invoiceDetail.taxExcludedAmount",
    "E9128": "order.invoiceDetail.tax",
    "E9129": "order.invoiceDetail.tax",
    "E9130": "order.invoiceDetail.taxIncludedAmount",
    "E9131": "order.invoiceDetail.tax",
    "E9138": "order.invoiceDetail.goodsCode",
    "E9154": "order.invoiceDetail",
    "E9302": "order.salerTaxNum",
    "E9306": "buyerTaxNo",
    "E9307": "buyerTaxNo",
    "E9529": "buyerTaxNo",
    "E9611": "serialNos",
}

_ROW_RE = re.compile(r"第\s*(\d+)\s*行")
_IDENT_RE = re.compile(r"[A-Za-z][A-Za-z0-9]{2,}")


# --- numbers and times -------------------------------------------------------------------------
def money(value: Decimal) -> str:
    """Two decimals, half up: ``Decimal('5') → '5.00'``."""
    return f"{q2(value):f}"


def plain(value: Decimal) -> str:
    """Up to 8 decimals, no trailing zeros, never an exponent: rates, quantities, unit prices."""
    text = f"{q8(value):f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def to_decimal(value: object, field: str) -> Decimal | None:
    """A reply's money/quantity field as Decimal (None when empty). Floats cannot occur: replies are
    parsed with ``parse_float=Decimal``."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise AmbiguousTaxError(f"reply field {field} is not a number", field=field, code="tax_garbled")
    try:
        result = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise AmbiguousTaxError(f"reply field {field} is not a number", field=field, code="tax_garbled") from None
    if not result.is_finite():
        raise AmbiguousTaxError(f"reply field {field} is not a number", field=field, code="tax_garbled")
    return result


def epoch_ms_to_datetime(value: object, field: str = "invoiceTime") -> datetime | None:
    """Epoch milliseconds (number or digit string) → aware datetime in China time; integer maths only."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise AmbiguousTaxError(f"reply field {field} is not epoch milliseconds", field=field, code="tax_garbled")
    if isinstance(value, str) and value.strip().isdigit():
        ms = int(value.strip())
    elif isinstance(value, int):
        ms = value
    elif isinstance(value, Decimal) and value == value.to_integral_value():
        ms = int(value)
    else:
        raise AmbiguousTaxError(f"reply field {field} is not epoch milliseconds", field=field, code="tax_garbled")
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)).astimezone(CHINA_TZ)


def china_time(now: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in China time (the format of ``invoiceDate``)."""
    return require_aware(now).astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")


def require_aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now


# --- requests ----------------------------------------------------------------------------------
def default_senid() -> str:
    """The ``senid`` query parameter: a fresh request id."""
    return uuid.uuid4().hex


def default_nonce() -> str:
    """The ``nonce`` query parameter: eight random digits (Nuonuo wants a positive integer of ≤ 8 digits)."""
    return str(10_000_000 + secrets.randbelow(90_000_000))


def compact_json(payload: Mapping[str, Any]) -> bytes:
    """The exact body: compact separators, UTF-8, no ASCII escaping (the signature covers these bytes)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sign(app_key: str, app_secret: str, *, senid: str, nonce: str, timestamp: str, body: bytes) -> str:
    """``X-Nuonuo-Sign`` for one request: Base64(HMAC-SHA1(appSecret, canonical string)) over the body bytes."""
    head = f"{SIGN_PREFIX}&k={app_key}&i={senid}&n={nonce}&t={timestamp}&f=".encode()
    digest = hmac.new(app_secret.encode("utf-8"), head + body, hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def services_url(endpoint: str) -> str:
    """Accept either the full services URL or the host root; always answer ``…/open/v1/services``."""
    base = endpoint.strip().split("?", 1)[0].rstrip("/")
    if not base.startswith(("https://", "http://")):
        raise ValueError("the Nuonuo endpoint must be an http(s) URL")
    return base if base.endswith(SERVICES_PATH) else base + SERVICES_PATH


def build_request(
    *,
    url: str,
    method: str,
    payload: Mapping[str, Any],
    app_key: str,
    app_secret: str,
    access_token: str,
    user_tax: str,
    senid: str,
    nonce: str,
    timestamp: str,
    idempotent: bool,
) -> HttpRequest:
    body = compact_json(payload)
    query = urlencode({"senid": senid, "nonce": nonce, "timestamp": timestamp, "appkey": app_key})
    headers = (
        ("Content-Type", CONTENT_TYPE),
        ("X-Nuonuo-Sign", sign(app_key, app_secret, senid=senid, nonce=nonce, timestamp=timestamp, body=body)),
        ("accessToken", access_token),
        ("userTax", user_tax),
        ("method", method),
    )
    return HttpRequest(
        method="POST",
        url=f"{url}?{query}",
        headers=headers,
        body=body,
        idempotent=idempotent,
        operation=method,
    )


def request_payload(request: HttpRequest) -> dict[str, Any]:
    """The JSON payload of a request this module built (for parsers that read back what was asked)."""
    try:
        data = json.loads(request.body.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


# --- replies -----------------------------------------------------------------------------------
def decode_envelope(response: HttpResponse) -> dict[str, Any] | None:
    """The reply as a JSON object (Decimal numbers), or None when it is not one."""
    try:
        data = json.loads(response.body.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def unwrap(request: HttpRequest, response: HttpResponse) -> Any:
    """``result`` of a successful reply; otherwise the mapped ``TaxError``."""
    envelope = decode_envelope(response)
    code = envelope.get("code") if envelope is not None else None
    if envelope is None or not isinstance(code, str) or not code:
        raise http_error(response, request.operation)
    if code == SUCCESS:
        if not 200 <= response.status < 300:
            raise AmbiguousTaxError(
                f"{request.operation}: success code with HTTP {response.status}", code="tax_garbled"
            )
        return envelope.get("result")
    describe = envelope.get("describe")
    error = map_error(code, describe if isinstance(describe, str) else "", request)
    result = envelope.get("result")
    if isinstance(error, DuplicateTaxError) and isinstance(result, dict):
        # when the reply names the existing invoice (its invoiceSerialNum), carry it
        existing = result.get("invoiceSerialNum")
        if isinstance(existing, str) and existing:
            error.existing = existing
    raise error


def http_error(response: HttpResponse, operation: str) -> TaxError:
    """A reply without a Nuonuo envelope: judge by the HTTP status alone."""
    status = response.status
    if status == 429 or status >= 500:
        return RetryableTaxError(f"{operation}: HTTP {status}", provider_code=f"HTTP{status}")
    if status in (401, 403):
        return AuthTaxError(f"{operation}: HTTP {status}", provider_code=f"HTTP{status}")
    # Any other status carries no envelope to say what happened: a create may have been acted on.
    return AmbiguousTaxError(f"{operation}: unreadable reply (HTTP {status})", code="tax_garbled")


def map_error(code: str, describe: str, request: HttpRequest | None = None) -> TaxError:
    """One Nuonuo error code (+ describe text) → the project's taxonomy."""
    operation = request.operation if request is not None else ""
    message = f"{operation}: {code} {describe}".strip(": ").strip()
    if code in DUPLICATE_CODES:
        return DuplicateTaxError(message, provider_code=code, field=CODE_FIELDS.get(code))
    if code in AUTH_CODES:
        return AuthTaxError(message, provider_code=code, field=CODE_FIELDS.get(code))
    if code in RETRY_CAP_CODES:
        return PermanentTaxError(message, provider_code=code, code="tax_retry_cap")
    if code in NOT_FOUND_CODES:
        return PermanentTaxError(message, provider_code=code, code="tax_not_found")
    if any(word in describe for word in _BUSY_WORDS):
        return RetryableTaxError(message, provider_code=code)
    if code not in DOCUMENTED_CODES:
        return AmbiguousTaxError(f"{message} (an undocumented code)", provider_code=code, code="tax_unknown_reply")
    return PermanentTaxError(message, provider_code=code, field=blamed_field(code, describe, request))


def blamed_field(code: str, describe: str, request: HttpRequest | None) -> str | None:
    """The field a rule error blames: a request field named in ``describe``, else the documented one.

    ``第3行`` in the text pins the detail row: ``order.invoiceDetail[2].tax``.
    """
    field = None
    if request is not None:
        known: dict[str, str] = {}
        for key, path in _paths(request_payload(request), ""):
            known.setdefault(key, path)
        for word in _IDENT_RE.findall(describe):
            if word in known:
                field = known[word]
                break
    if field is None:
        field = CODE_FIELDS.get(code)
    row = _ROW_RE.search(describe)
    if field is not None and row is not None and ".invoiceDetail." in f".{field}":
        prefix, _, leaf = field.partition("invoiceDetail.")
        index = int(row.group(1)) - 1
        if index >= 0:
            field = f"{prefix}invoiceDetail[{index}].{leaf}"
    return field


def _paths(value: Any, prefix: str) -> Iterable[tuple[str, str]]:
    """(key, dotted path) of every key in a payload; list items share their list's path."""
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            yield str(key), path
            yield from _paths(item, path)
    elif isinstance(value, list):
        for item in value:
            yield from _paths(item, prefix)


def is_token_error(error: BaseException) -> bool:
    """True for the auth codes a fresh access token may cure (refresh once, then give up)."""
    return isinstance(error, AuthTaxError) and error.provider_code in TOKEN_CODES
