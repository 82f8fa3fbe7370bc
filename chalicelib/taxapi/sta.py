"""The ``sta`` provider: direct connection to the tax authority (Leqi-style), sans-IO, byte for byte.

This module owns the client side of the wire contract in ``docs/tax-protocol.md``: mapping domain
objects to the pinyin payloads (``QDFPSC``, ``CXQDFPSCJG``, ``QDHZQRDSQ`` …), encoding them (compact
JSON → PKCS#7 → SM4-ECB → Base64), signing them (HMAC-SM3 over the canonical five-line string),
verifying and decrypting replies, and mapping every reply to a typed result or to exactly one
``TaxError`` of the taxonomy. It never sends anything (``chalicelib.adapters.http`` does) and never
fetches secrets (they arrive in ``Credentials``); time and the nonce are inputs, so golden tests can
pin every byte. Secret material never appears in reprs, exceptions or results.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final

from chalicelib.crypto import CryptoError, hmac_sm3, sm3, sm4_ecb_decrypt, sm4_ecb_encrypt
from chalicelib.domain.errors import (
    AmbiguousTaxError,
    AuthTaxError,
    ConfigurationError,
    DuplicateTaxError,
    PermanentTaxError,
    RetryableTaxError,
    TaxError,
    UnsupportedOperation,
)
from chalicelib.domain.models import (
    BuyerType,
    InvoiceColour,
    InvoiceLine,
    InvoiceOrder,
    InvoiceType,
    ZeroRateFlag,
)
from chalicelib.domain.money import CENT, PRICE_PLACES
from chalicelib.taxapi.base import (
    Capabilities,
    Credentials,
    CreditLine,
    HttpRequest,
    HttpResponse,
    InvoiceResult,
    InvoiceStatus,
    IssueAccepted,
    Provider,
    RedForm,
    RedFormAction,
    RedFormRequest,
    RedFormState,
    TaxCodeEntry,
    VoidResult,
)

# --- service codes (fwbm) ------------------------------------------------------------------------
ISSUE: Final = "QDFPSC"
QUERY: Final = "CXQDFPSCJG"
RED_FORM_APPLY: Final = "QDHZQRDSQ"
RED_FORM_CONFIRM: Final = "QDHZQRDQR"
RED_FORM_QUERY: Final = "CXHZQRD"
VOID: Final = "ZFFP"
CREDIT: Final = "CXSXED"
TAX_CODES: Final = "CXSSFLBM"

TAX_CODES_PAGE_SIZE: Final = 500
#: Asia/Shanghai has had no daylight saving since 1991: a fixed offset avoids a tzdata dependency.
SHANGHAI: Final = timezone(timedelta(hours=8), "Asia/Shanghai")
_DATETIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
_NONCE_RE: Final = re.compile(r"^[0-9a-f]{32}$")
_SIGNATURE_RE: Final = re.compile(r"^[0-9a-f]{64}$")
_TIMESTAMP_RE: Final = re.compile(r"^[0-9]{1,12}$")
_FIELD_RE: Final = re.compile(r"参数错误\s*[:：]\s*([A-Za-z_][A-Za-z0-9_.\[\]]*)")


def default_nonce() -> str:
    """32 lower-case hex characters from the OS CSPRNG."""
    return secrets.token_hex(16)


# --- error table (docs/tax-protocol.md, "Error codes → taxonomy") ---------------------------------
_ERROR_CLASSES: Final[Mapping[str, type[TaxError]]] = {
    "E1001": PermanentTaxError,
    "E1002": PermanentTaxError,
    "E1003": PermanentTaxError,
    "E1004": PermanentTaxError,
    "E1005": PermanentTaxError,
    "E2001": AuthTaxError,
    "E2002": AuthTaxError,
    "E2003": AuthTaxError,
    "E3001": RetryableTaxError,
    "E4001": DuplicateTaxError,
    "E4004": PermanentTaxError,
    "E5001": UnsupportedOperation,
}

_QUERY_STATUS: Final[Mapping[str, InvoiceStatus]] = {
    "01": InvoiceStatus.PENDING,
    "02": InvoiceStatus.ISSUED,
    "03": InvoiceStatus.FAILED,
}

_ZERO_RATE_CODES: Final[Mapping[ZeroRateFlag, str]] = {
    ZeroRateFlag.EXEMPT: "1",
    ZeroRateFlag.NOT_TAXABLE: "2",
    ZeroRateFlag.ZERO_RATE: "3",
}
_ZERO_RATE_POLICY_TEXT: Final[Mapping[ZeroRateFlag, str]] = {
    ZeroRateFlag.EXEMPT: "免税",
    ZeroRateFlag.NOT_TAXABLE: "不征税",
}


# --- value formatting ----------------------------------------------------------------------------
def format_money(value: Decimal) -> str:
    """Two decimals, no rounding: an amount with more than 2 decimals is a bug upstream."""
    if value != value.quantize(CENT):
        raise ValueError("money must have at most 2 decimals")
    return str(value.quantize(CENT) + Decimal(0))  # + 0 turns -0.00 into 0.00


def format_number(value: Decimal) -> str:
    """Quantities, unit prices and rates: plain notation, at most 8 decimals, no trailing zeros."""
    if value != value.quantize(PRICE_PLACES):
        raise ValueError("quantities, unit prices and rates have at most 8 decimals")
    normal = (value + Decimal(0)).normalize()
    return format(normal, "f")


def _opt_number(value: Decimal | None) -> str:
    return "" if value is None else format_number(value)


def format_datetime(value: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in Asia/Shanghai (naive datetimes are taken as Shanghai time)."""
    if value.tzinfo is not None:
        value = value.astimezone(SHANGHAI)
    return value.strftime(_DATETIME_FORMAT)


def _unix_seconds(now: datetime) -> int:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return int(now.timestamp())


def canonical_string(app_id: str, service: str, timestamp: str, nonce: str, body: bytes) -> str:
    """The five signed lines: app id, service code, timestamp, nonce, hex(SM3(body))."""
    return "\n".join((app_id, service, timestamp, nonce, sm3(body).hex()))


def sign(sign_key: bytes, *, app_id: str, service: str, timestamp: str, nonce: str, body: bytes) -> str:
    """``access_signature``: hex(HMAC-SM3(sign_key, UTF-8(canonical string)))."""
    canonical = canonical_string(app_id, service, timestamp, nonce, body)
    return hmac_sm3(sign_key, canonical.encode("utf-8")).hex()


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """Compact JSON in the payload's key order, UTF-8 (non-ASCII kept as is)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def encrypt_body(sm4_key: bytes, payload: Mapping[str, Any]) -> bytes:
    """Base64(SM4-ECB(PKCS#7(UTF-8(JSON(payload))))) as ASCII bytes."""
    return base64.b64encode(sm4_ecb_encrypt(sm4_key, encode_payload(payload)))


def decrypt_body(sm4_key: bytes, body: bytes | str) -> Any:
    """Inverse of :func:`encrypt_body`; JSON numbers become Decimal/int, never float."""
    raw = base64.b64decode(body, validate=True)
    return json.loads(sm4_ecb_decrypt(sm4_key, raw).decode("utf-8"), parse_float=Decimal)


def build_reply(
    response: Mapping[str, Any],
    *,
    service: str,
    app_id: str,
    sm4_key: bytes,
    sign_key: bytes,
    timestamp: str,
    nonce: str,
) -> HttpResponse:
    """The receiver's side of the envelope: an HTTP 200 reply carrying ``response``, encrypted and signed.

    Used by the tests, the benchmark and the worked example; the sandbox may use it too (it is the
    same contract seen from the other end).
    """
    inner = encrypt_body(sm4_key, response).decode("ascii")
    signature = sign(sign_key, app_id=app_id, service=service, timestamp=timestamp, nonce=nonce, body=inner.encode())
    body = json.dumps({"httpStatusCode": 200, "body": inner}, separators=(",", ":")).encode("ascii")
    headers = (
        ("Content-Type", "application/json"),
        ("X-Timestamp", timestamp),
        ("X-Nonce", nonce),
        ("access_signature", signature),
    )
    return HttpResponse(status=200, headers=headers, body=body)


# --- reply helpers -------------------------------------------------------------------------------
def _text(value: Any) -> str | None:
    """A reply field as text; absent / null / empty → None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise AmbiguousTaxError(f"unexpected value type {type(value).__name__} in reply")
    text = str(value).strip()
    return text or None


def _money(value: Any, name: str) -> Decimal | None:
    text = _text(value)
    if text is None:
        return None
    try:
        result = Decimal(text)
    except ArithmeticError:
        raise AmbiguousTaxError(f"reply field {name} is not a number") from None
    if not result.is_finite():
        raise AmbiguousTaxError(f"reply field {name} is not a number")
    return result


def _require_money(data: Mapping[str, Any], name: str) -> Decimal:
    value = _money(data.get(name), name)
    if value is None:
        raise AmbiguousTaxError(f"reply lacks {name}")
    return value


def _require_text(data: Mapping[str, Any], name: str) -> str:
    value = _text(data.get(name))
    if value is None:
        raise AmbiguousTaxError(f"reply lacks {name}")
    return value


def _parse_reply_datetime(value: Any) -> datetime | None:
    text = _text(value)
    if text is None:
        return None
    try:
        return datetime.strptime(text, _DATETIME_FORMAT).replace(tzinfo=SHANGHAI)
    except ValueError:
        raise AmbiguousTaxError("reply field kprq is not YYYY-MM-DD HH:MM:SS") from None


def _objects(value: Any, name: str) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise AmbiguousTaxError(f"reply field {name} is not a list of objects")
    return value


class StaProvider(Provider):
    """Direct connection (Leqi-style). Credentials keys: ``app_id``, ``sm4_key`` (32 hex), ``sign_key``.

    Options (non-secret): ``using_platform_id`` (default: the seller's tax id), ``capability_code``
    (``LQKP``), ``use_case`` (``01``), ``sandbox`` (``0``/``1``, default ``0``).
    """

    name = "sta"
    capabilities = Capabilities(void=False, async_issue=True, max_query_batch=50, red_form_required=True)

    def __init__(
        self,
        credentials: Credentials,
        endpoint: str,
        *,
        seller_tax_id: str,
        options: dict[str, str] | None = None,
        nonce_factory: Callable[[], str] | None = None,
    ) -> None:
        self._app_id = credentials.require("app_id")
        try:
            sm4_key = bytes.fromhex(credentials.require("sm4_key"))
        except ValueError:
            sm4_key = b""
        if len(sm4_key) != 16:
            raise ConfigurationError("credentials 'sm4_key' must be 32 hex characters", code="bad_credential")
        self._sm4_key = sm4_key
        self._sign_key = credentials.require("sign_key").encode("utf-8")
        if not endpoint.startswith(("https://", "http://")):
            raise ConfigurationError("sta endpoint must be an http(s) URL", code="bad_endpoint")
        self._endpoint = endpoint.rstrip("/")
        if not seller_tax_id:
            raise ConfigurationError("seller tax id is required", code="missing_seller_tax_id")
        self._seller_tax_id = seller_tax_id
        opts = options or {}
        self._using_platform_id = opts.get("using_platform_id") or seller_tax_id
        self._capability_code = opts.get("capability_code") or "LQKP"
        self._use_case = opts.get("use_case") or "01"
        self._sandbox = opts.get("sandbox") or "0"
        if self._sandbox not in ("0", "1"):
            raise ConfigurationError("option 'sandbox' must be '0' or '1'", code="bad_option")
        for value, what in ((self._capability_code, "capability_code"), (self._use_case, "use_case")):
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", value):
                raise ConfigurationError(f"option '{what}' is not a valid code", code="bad_option")
        self._nonce_factory = nonce_factory or default_nonce

    def __repr__(self) -> str:
        return f"StaProvider(endpoint={self._endpoint!r}, app_id={self._app_id!r}, seller={self._seller_tax_id!r})"

    # --- request construction --------------------------------------------------------------------
    def _request(
        self, service: str, payload: Mapping[str, Any], now: datetime, *, idempotent: bool, operation: str
    ) -> HttpRequest:
        body = encrypt_body(self._sm4_key, payload)
        timestamp = str(_unix_seconds(now))
        nonce = self._nonce_factory()
        if not _NONCE_RE.match(nonce):
            raise ValueError("nonce must be 32 lower-case hex characters")
        signature = sign(
            self._sign_key, app_id=self._app_id, service=service, timestamp=timestamp, nonce=nonce, body=body
        )
        headers = (
            ("Content-Type", "text/plain; charset=utf-8"),
            ("fwbm", service),
            ("nlbm", self._capability_code),
            ("jrdwptbh", self._app_id),
            ("sydwptbh", self._using_platform_id),
            ("ylbm", self._use_case),
            ("sxcsbz", self._sandbox),
            ("X-Timestamp", timestamp),
            ("X-Nonce", nonce),
            ("access_signature", signature),
        )
        url = f"{self._endpoint}/access/v2/invoke/{self._capability_code}/{service}"
        return HttpRequest(
            method="POST", url=url, headers=headers, body=body, idempotent=idempotent, operation=operation
        )

    def _check_seller(self, tax_id: str | None) -> None:
        if tax_id and tax_id != self._seller_tax_id:
            raise ValueError("the order's seller tax id is not this provider's seller")

    def invoice_payload(self, order: InvoiceOrder, serial: str) -> dict[str, Any]:
        """The ``QDFPSC`` payload, keys in the documented order."""
        red = order.colour is InvoiceColour.RED
        self._check_seller(order.seller.tax_id)
        if not serial:
            raise ValueError("serial is required")
        if red:
            if not order.original_invoice_number or not order.red_form_id:
                raise ValueError("a red invoice needs the original invoice number and the red form id")
            if order.total > 0 or any(line.total > 0 for line in order.lines):
                raise ValueError("a red invoice carries negative amounts")
            if any(line.is_discount for line in order.lines):
                raise ValueError("a red invoice carries no discount lines")
            if any(line.original_line_no is None for line in order.lines):
                raise ValueError("every red line names the original line it reverses")
        seller, buyer = order.seller, order.buyer
        return {
            "fpqqlsh": serial,
            "lzfpbz": "1" if red else "0",
            "fppz": "01" if order.invoice_type is InvoiceType.SPECIAL else "02",
            "xsfnsrsbh": self._seller_tax_id,
            "xsfmc": seller.name,
            "xsfdz": seller.address or "",
            "xsfdh": seller.phone or "",
            "xsfkhh": seller.bank or "",
            "xsfzh": seller.account or "",
            "gmfnsrsbh": buyer.tax_id or "",
            "gmfmc": buyer.name,
            "gmfdz": buyer.address or "",
            "gmfdh": buyer.phone or "",
            "gmfkhh": buyer.bank or "",
            "gmfzh": buyer.account or "",
            "gmfzrrbs": "Y" if buyer.type is BuyerType.INDIVIDUAL else "N",
            "hjje": format_money(order.total_amount),
            "hjse": format_money(order.total_tax),
            "jshj": format_money(order.total),
            "kpr": order.issuer,
            "fhr": order.reviewer or "",
            "skr": order.payee or "",
            "bz": order.remark or "",
            "ddh": order.order_id,
            "dylzfphm": (order.original_invoice_number or "") if red else "",
            "hzqrdbh": (order.red_form_id or "") if red else "",
            "mxs": [_line_payload(i, line, order.lines, red=red) for i, line in enumerate(order.lines)],
        }

    def build_issue(self, order: InvoiceOrder, serial: str, now: datetime) -> HttpRequest:
        if order.colour is not InvoiceColour.BLUE:
            raise ValueError("build_issue takes a blue order; use build_issue_red")
        return self._request(ISSUE, self.invoice_payload(order, serial), now, idempotent=False, operation="issue")

    def build_issue_red(self, order: InvoiceOrder, serial: str, now: datetime) -> HttpRequest:
        if order.colour is not InvoiceColour.RED:
            raise ValueError("build_issue_red takes a red order")
        return self._request(ISSUE, self.invoice_payload(order, serial), now, idempotent=False, operation="issue_red")

    def build_query(
        self, now: datetime, *, serials: tuple[str, ...] = (), order_nos: tuple[str, ...] = ()
    ) -> HttpRequest:
        if not serials and not order_nos:
            raise ValueError("query by at least one serial or order number")
        limit = self.capabilities.max_query_batch
        if len(serials) > limit or len(order_nos) > limit:
            raise ValueError(f"at most {limit} serials and {limit} order numbers per query")
        payload = {"fpqqlsh": list(serials), "ddh": list(order_nos)}
        return self._request(QUERY, payload, now, idempotent=True, operation="query")

    def build_red_form_apply(self, form: RedFormRequest, now: datetime) -> HttpRequest:
        self._check_seller(form.seller_tax_id)
        order = form.order
        if order.total_amount > 0 or order.total_tax > 0:
            raise ValueError("a red form carries negative amounts")
        lines = []
        for line in order.lines:
            if line.original_line_no is None:
                raise ValueError("every red form line names the original line it reverses")
            lines.append(
                {
                    "lzmxxh": line.original_line_no,
                    "spmc": line.display_name,
                    "ssflbm": line.tax_code,
                    "spsl": _opt_number(line.quantity),
                    "dj": _opt_number(line.unit_price),
                    "je": format_money(line.amount),
                    "sl": format_number(line.tax_rate),
                    "se": format_money(line.tax),
                }
            )
        payload = {
            "sqlsh": form.serial,
            "lrfsf": "0",
            "xsfnsrsbh": self._seller_tax_id,
            "gmfnsrsbh": form.buyer_tax_id or "",
            "gmfmc": form.buyer_name,
            "lzfphm": form.original_invoice_number,
            "lzkprq": format_datetime(form.original_issued_at),
            "hzcxje": format_money(order.total_amount),
            "hzcxse": format_money(order.total_tax),
            "chyydm": form.reason.value,
            "mxs": lines,
        }
        return self._request(RED_FORM_APPLY, payload, now, idempotent=False, operation="red_form_apply")

    def build_red_form_confirm(self, form_id: str, action: RedFormAction, now: datetime) -> HttpRequest:
        payload = {"hzqrdbh": form_id, "qrlx": RedFormAction(action).value}
        return self._request(RED_FORM_CONFIRM, payload, now, idempotent=False, operation="red_form_confirm")

    def build_red_form_query(self, form_id: str, now: datetime) -> HttpRequest:
        return self._request(RED_FORM_QUERY, {"hzqrdbh": form_id}, now, idempotent=True, operation="red_form_query")

    def build_void(self, invoice_number: str, serial: str, now: datetime) -> HttpRequest:
        payload = {"fphm": invoice_number, "zflsh": serial}
        return self._request(VOID, payload, now, idempotent=False, operation="void")

    def build_query_credit(self, now: datetime) -> HttpRequest:
        return self._request(CREDIT, {"xsfnsrsbh": self._seller_tax_id}, now, idempotent=True, operation="query_credit")

    def build_fetch_tax_codes(self, now: datetime, *, page: int = 1) -> HttpRequest:
        if page < 1:
            raise ValueError("page starts at 1")
        payload = {"page": page, "size": TAX_CODES_PAGE_SIZE}
        return self._request(TAX_CODES, payload, now, idempotent=True, operation="fetch_tax_codes")

    # --- reply parsing ---------------------------------------------------------------------------
    def open_reply(self, request: HttpRequest, response: HttpResponse, service: str) -> dict[str, Any]:
        """Verify, decrypt and unwrap a reply: the ``Data`` object, or the mapped TaxError."""
        sent = request.header("fwbm")
        if sent != service:
            raise ValueError(f"this parser answers {service}, the request was {sent}")
        status = response.status
        if status in (401, 403):
            raise AuthTaxError(
                f"{service}: HTTP {status}",
                provider_code=_plain_error_code(response.body) or f"HTTP{status}",
            )
        if status == 429 or 500 <= status <= 599:
            raise RetryableTaxError(f"{service}: HTTP {status}", provider_code=f"HTTP{status}")
        if status != 200:
            # Undocumented status: we cannot tell whether the platform acted on the request.
            raise AmbiguousTaxError(f"{service}: unexpected HTTP {status}", provider_code=f"HTTP{status}")
        inner = self._verified_inner_body(response, service)
        try:
            decrypted = decrypt_body(self._sm4_key, inner)
        except (ValueError, CryptoError, binascii.Error):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise AmbiguousTaxError(f"{service}: reply body cannot be decrypted") from None
        envelope = decrypted.get("Response") if isinstance(decrypted, dict) else None
        if not isinstance(envelope, dict):
            raise AmbiguousTaxError(f"{service}: reply lacks Response")
        data = envelope.get("Data")
        error = envelope.get("Error")
        if error is not None:
            raise _map_error(service, error, data)
        if not isinstance(data, dict):
            raise AmbiguousTaxError(f"{service}: reply has neither Data nor Error")
        code = _text(data.get("returncode"))
        if code is not None and code != "00":
            message = _text(data.get("returnmsg")) or ""
            raise PermanentTaxError(f"{service}: returncode {code} {message}".strip(), provider_code=code)
        return data

    def _verified_inner_body(self, response: HttpResponse, service: str) -> str:
        try:
            outer = json.loads(response.body.decode("utf-8"), parse_float=Decimal)
        except ValueError:
            raise AmbiguousTaxError(f"{service}: reply is not JSON") from None
        inner = outer.get("body") if isinstance(outer, dict) else None
        if not isinstance(inner, str) or not inner.isascii():
            raise AmbiguousTaxError(f"{service}: reply lacks the encrypted body")
        timestamp = response.header("X-Timestamp") or ""
        nonce = response.header("X-Nonce") or ""
        signature = response.header("access_signature") or ""
        if not (_TIMESTAMP_RE.match(timestamp) and _NONCE_RE.match(nonce) and _SIGNATURE_RE.match(signature)):
            raise AmbiguousTaxError(f"{service}: reply signature headers missing or malformed")
        expected = sign(
            self._sign_key,
            app_id=self._app_id,
            service=service,
            timestamp=timestamp,
            nonce=nonce,
            body=inner.encode("ascii"),
        )
        if not hmac.compare_digest(expected, signature):
            raise self._unverified_auth_error(inner, service) or AmbiguousTaxError(
                f"{service}: reply signature does not verify"
            )
        return inner

    def _unverified_auth_error(self, inner: str, service: str) -> AuthTaxError | None:
        """A reply we cannot verify is garbled (Ambiguous) — except the receiver's own auth refusal.

        The receiver signs its E2001–E2003 replies with the app's real sign key, so a client holding a
        wrong ``sign_key`` can never verify them: without this, a misconfigured key reads as "outcome
        unknown" forever instead of "alert, pause the store". The receiver refused before acting, and
        an unverified reply can only turn into this refusal, never into a success or a duplicate.
        """
        try:
            decrypted = decrypt_body(self._sm4_key, inner)
        except (ValueError, CryptoError, binascii.Error):
            return None
        envelope = decrypted.get("Response") if isinstance(decrypted, dict) else None
        error = envelope.get("Error") if isinstance(envelope, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        if not isinstance(code, str) or _ERROR_CLASSES.get(code) is not AuthTaxError:
            return None
        return AuthTaxError(
            f"{service}: {code} refused, and the reply signature does not verify (check sign_key)",
            provider_code=code,
        )

    def _sent_payload(self, request: HttpRequest) -> dict[str, Any]:
        payload = decrypt_body(self._sm4_key, request.body)
        if not isinstance(payload, dict):
            raise ValueError("the request body is not a payload this provider built")
        return payload

    def _accepted(self, request: HttpRequest, response: HttpResponse) -> IssueAccepted:
        data = self.open_reply(request, response, ISSUE)
        serial = str(self._sent_payload(request)["fpqqlsh"])
        echoed = _text(data.get("fpqqlsh"))
        if echoed is not None and echoed != serial:
            raise AmbiguousTaxError("QDFPSC: reply is for another serial")
        return IssueAccepted(serial=serial, provider_ref=_text(data.get("slh")))

    def parse_issue(self, request: HttpRequest, response: HttpResponse) -> IssueAccepted:
        return self._accepted(request, response)

    def parse_issue_red(self, request: HttpRequest, response: HttpResponse) -> IssueAccepted:
        return self._accepted(request, response)

    def parse_query(self, request: HttpRequest, response: HttpResponse) -> list[InvoiceResult]:
        data = self.open_reply(request, response, QUERY)
        results = []
        for item in _objects(data.get("jgs"), "jgs"):
            zt = _text(item.get("zt"))
            status = _QUERY_STATUS.get(zt or "")
            if status is None:
                raise AmbiguousTaxError("CXQDFPSCJG: unknown result state")
            number = _text(item.get("fphm"))
            if status is InvoiceStatus.ISSUED and (number is None or not re.fullmatch(r"\d{20}", number)):
                raise AmbiguousTaxError("CXQDFPSCJG: an issued result lacks a 20-digit fphm")
            results.append(
                InvoiceResult(
                    serial=_require_text(item, "fpqqlsh"),
                    order_no=_text(item.get("ddh")),
                    status=status,
                    invoice_number=number,
                    issued_at=_parse_reply_datetime(item.get("kprq")),
                    total_amount=_money(item.get("hjje"), "hjje"),
                    total_tax=_money(item.get("hjse"), "hjse"),
                    pdf_url=_text(item.get("pdfurl")),
                    ofd_url=_text(item.get("ofdurl")),
                    xml_url=_text(item.get("xmlurl")),
                    failure_reason=_text(item.get("sbyy")),
                    provider_status=zt,
                )
            )
        return results

    def _red_form(self, data: Mapping[str, Any], service: str) -> RedForm:
        state_code = _require_text(data, "hzqrxxztdm")
        try:
            state = RedFormState(state_code)
        except ValueError:
            raise AmbiguousTaxError(f"{service}: unknown red form state") from None
        return RedForm(
            form_id=_require_text(data, "hzqrdbh"),
            state=state,
            original_invoice_number=_text(data.get("lzfphm")),
            red_amount=_money(data.get("hzcxje"), "hzcxje"),
            red_tax=_money(data.get("hzcxse"), "hzcxse"),
            provider_status=state_code,
        )

    def parse_red_form_apply(self, request: HttpRequest, response: HttpResponse) -> RedForm:
        return self._red_form(self.open_reply(request, response, RED_FORM_APPLY), RED_FORM_APPLY)

    def parse_red_form_confirm(self, request: HttpRequest, response: HttpResponse) -> RedForm:
        return self._red_form(self.open_reply(request, response, RED_FORM_CONFIRM), RED_FORM_CONFIRM)

    def parse_red_form_query(self, request: HttpRequest, response: HttpResponse) -> RedForm:
        return self._red_form(self.open_reply(request, response, RED_FORM_QUERY), RED_FORM_QUERY)

    def parse_void(self, request: HttpRequest, response: HttpResponse) -> VoidResult:
        data = self.open_reply(request, response, VOID)
        number = _text(data.get("fphm")) or str(self._sent_payload(request)["fphm"])
        return VoidResult(invoice_number=number, status=InvoiceStatus.VOIDED)

    def parse_query_credit(self, request: HttpRequest, response: HttpResponse) -> CreditLine:
        data = self.open_reply(request, response, CREDIT)
        return CreditLine(
            total=_require_money(data, "zsxed"),
            used=_require_money(data, "ysyed"),
            remaining=_require_money(data, "syed"),
        )

    def parse_fetch_tax_codes(self, request: HttpRequest, response: HttpResponse) -> list[TaxCodeEntry]:
        data = self.open_reply(request, response, TAX_CODES)
        entries = []
        for item in _objects(data.get("mxs"), "mxs"):
            rates = item.get("sl") or []
            if not isinstance(rates, list):
                raise AmbiguousTaxError("CXSSFLBM: sl is not a list")
            parsed_rates = tuple(r for r in (_money(v, "sl") for v in rates) if r is not None)
            entries.append(
                TaxCodeEntry(
                    code=_require_text(item, "ssflbm"),
                    name=_text(item.get("spmc")) or "",
                    short_name=_text(item.get("sphfwjc")) or "",
                    rates=parsed_rates,
                )
            )
        return entries


def _line_payload(index: int, line: InvoiceLine, lines: Sequence[InvoiceLine], *, red: bool) -> dict[str, Any]:
    followed_by_discount = index + 1 < len(lines) and lines[index + 1].is_discount
    if line.is_discount:
        if index == 0 or lines[index - 1].is_discount:
            raise ValueError("a discount line must directly follow the line it discounts")
        kind = "1"
    else:
        kind = "2" if followed_by_discount else "0"
    zero = line.zero_rate_flag
    policy = line.favoured_policy or (_ZERO_RATE_POLICY_TEXT.get(zero) if zero else None) or ""
    return {
        "xh": index + 1,
        "spmc": line.display_name,
        "ssflbm": line.tax_code,
        "ggxh": line.specification or "",
        "dw": line.unit or "",
        "spsl": _opt_number(line.quantity),
        "dj": _opt_number(line.unit_price),
        "je": format_money(line.amount),
        "sl": format_number(line.tax_rate),
        "se": format_money(line.tax),
        "hsje": format_money(line.total),
        "fphxz": kind,
        "yhzcbs": "1" if policy else "0",
        "lslbs": _ZERO_RATE_CODES.get(zero, "") if zero else "",
        "zzstsgl": policy,
        "dylzfpmxxh": line.original_line_no if red else None,
    }


def _plain_error_code(body: bytes) -> str | None:
    """The ``code`` of a plain (unencrypted) JSON error body such as the 401 reply, if any."""
    try:
        parsed = json.loads(body.decode("utf-8"))
    except ValueError:
        return None
    code = parsed.get("code") if isinstance(parsed, dict) else None
    return code if isinstance(code, str) and re.fullmatch(r"[A-Z0-9]{1,16}", code) else None


def _first(sources: Iterable[Mapping[str, Any]], name: str) -> str | None:
    for source in sources:
        value = _text(source.get(name))
        if value is not None:
            return value
    return None


def _map_error(service: str, error: Any, data: Any) -> TaxError:
    """One ``Response.Error`` → the TaxError the table in docs/tax-protocol.md names."""
    if not isinstance(error, dict):
        return AmbiguousTaxError(f"{service}: malformed Error")
    code = _text(error.get("code"))
    message = _text(error.get("Message")) or _text(error.get("message")) or ""
    if code is None:
        return AmbiguousTaxError(f"{service}: Error without a code")
    text = f"{service}: {code} {message}".strip()
    cls = _ERROR_CLASSES.get(code, PermanentTaxError)
    if cls is DuplicateTaxError:
        # The existing invoice rides in Data (documented) or, from lenient peers, in Error itself.
        sources = [s for s in (data, error) if isinstance(s, dict)]
        existing = _first(sources, "fphm") or _first(sources, "fpqqlsh")
        return DuplicateTaxError(text, provider_code=code, existing=existing)
    field = None
    if code == "E1001":
        match = _FIELD_RE.search(message)
        field = match.group(1) if match else None
    return cls(text, provider_code=code, field=field)
