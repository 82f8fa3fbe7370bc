"""The ``sta`` provider: direct connection to the tax authority (Leqi-style), sans-IO, byte for byte.

This module owns :class:`StaProvider`, the client side of the wire contract in
``docs/tax-protocol.md``: it checks its configuration, builds every operation's request and parses
every reply into a typed result or into exactly one ``TaxError`` of the taxonomy. The field mapping
(domain objects ↔ the pinyin payloads ``QDFPSC``, ``CXQDFPSCJG``, ``QDHZQRDSQ`` …, the error table)
lives in :mod:`chalicelib.taxapi.sta_mapping`; the envelope (compact JSON → PKCS#7 → SM4-ECB →
Base64, HMAC-SM3 over the canonical five-line string, reply verification) in
:mod:`chalicelib.taxapi.sta_wire`. Their public names are re-exported here. It never sends anything
(``chalicelib.adapters.http`` does) and never fetches secrets (they arrive in ``Credentials``); time
and the nonce are inputs, so golden tests can pin every byte. Secret material never appears in reprs,
exceptions or results.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from chalicelib.domain.errors import AmbiguousTaxError, ConfigurationError
from chalicelib.domain.models import InvoiceColour, InvoiceOrder
from chalicelib.taxapi import sta_mapping as m
from chalicelib.taxapi import sta_wire as wire
from chalicelib.taxapi.base import (
    Capabilities,
    Credentials,
    CreditLine,
    HttpRequest,
    HttpResponse,
    InvoiceResult,
    InvoiceStatus,
    IssueAccepted,
    RedForm,
    RedFormAction,
    RedFormRequest,
    TaxCodeEntry,
    VoidResult,
)
from chalicelib.taxapi.sta_mapping import format_datetime, format_money, format_number
from chalicelib.taxapi.sta_wire import (
    CREDIT,
    ISSUE,
    QUERY,
    RED_FORM_APPLY,
    RED_FORM_CONFIRM,
    RED_FORM_QUERY,
    TAX_CODES,
    VOID,
    build_reply,
    canonical_string,
    decrypt_body,
    default_nonce,
    encode_payload,
    encrypt_body,
    sign,
)

__all__ = [
    "CREDIT",
    "ISSUE",
    "QUERY",
    "RED_FORM_APPLY",
    "RED_FORM_CONFIRM",
    "RED_FORM_QUERY",
    "TAX_CODES",
    "TAX_CODES_PAGE_SIZE",
    "VOID",
    "StaProvider",
    "build_reply",
    "canonical_string",
    "decrypt_body",
    "default_nonce",
    "encode_payload",
    "encrypt_body",
    "format_datetime",
    "format_money",
    "format_number",
    "sign",
]

TAX_CODES_PAGE_SIZE: Final = 500


class StaProvider:
    """Direct connection (Leqi-style). Credentials keys: ``app_id``, ``sm4_key`` (32 hex), ``sign_key``.

    Options (non-secret): ``using_platform_id`` (default: the seller's tax id), ``capability_code``
    (``LQKP``), ``use_case`` (``01``), ``sandbox`` (``0``/``1``, default ``0``). Satisfies
    :class:`~chalicelib.taxapi.base.Provider` structurally.
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
        self._nonce_factory = nonce_factory or wire.default_nonce

    def __repr__(self) -> str:
        return f"StaProvider(endpoint={self._endpoint!r}, app_id={self._app_id!r}, seller={self._seller_tax_id!r})"

    # --- request construction --------------------------------------------------------------------
    def _request(
        self, service: str, payload: Mapping[str, Any], now: datetime, *, idempotent: bool, operation: str
    ) -> HttpRequest:
        body = wire.encrypt_body(self._sm4_key, payload)
        timestamp = str(wire.unix_seconds(now))
        return wire.signed_request(
            endpoint=self._endpoint,
            service=service,
            body=body,
            timestamp=timestamp,
            nonce=self._nonce_factory(),
            app_id=self._app_id,
            sign_key=self._sign_key,
            capability_code=self._capability_code,
            using_platform_id=self._using_platform_id,
            use_case=self._use_case,
            sandbox=self._sandbox,
            idempotent=idempotent,
            operation=operation,
        )

    def _check_seller(self, tax_id: str | None) -> None:
        if tax_id and tax_id != self._seller_tax_id:
            raise ValueError("the order's seller tax id is not this provider's seller")

    def invoice_payload(self, order: InvoiceOrder, serial: str) -> dict[str, Any]:
        """The ``QDFPSC`` payload, keys in the documented order."""
        self._check_seller(order.seller.tax_id)
        return m.invoice_fields(order, serial, seller_tax_id=self._seller_tax_id)

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
        payload = m.red_form_fields(form, seller_tax_id=self._seller_tax_id)
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
        return wire.open_reply(
            request, response, service, app_id=self._app_id, sm4_key=self._sm4_key, sign_key=self._sign_key
        )

    def _sent_payload(self, request: HttpRequest) -> dict[str, Any]:
        payload = wire.decrypt_body(self._sm4_key, request.body)
        if not isinstance(payload, dict):
            raise ValueError("the request body is not a payload this provider built")
        return payload

    def _accepted(self, request: HttpRequest, response: HttpResponse) -> IssueAccepted:
        data = self.open_reply(request, response, ISSUE)
        serial = str(self._sent_payload(request)["fpqqlsh"])
        echoed = m.text(data.get("fpqqlsh"))
        if echoed is not None and echoed != serial:
            raise AmbiguousTaxError("QDFPSC: reply is for another serial")
        return IssueAccepted(serial=serial, provider_ref=m.text(data.get("slh")))

    def parse_issue(self, request: HttpRequest, response: HttpResponse) -> IssueAccepted:
        return self._accepted(request, response)

    def parse_issue_red(self, request: HttpRequest, response: HttpResponse) -> IssueAccepted:
        return self._accepted(request, response)

    def parse_query(self, request: HttpRequest, response: HttpResponse) -> list[InvoiceResult]:
        return m.query_results(self.open_reply(request, response, QUERY))

    def parse_red_form_apply(self, request: HttpRequest, response: HttpResponse) -> RedForm:
        return m.red_form(self.open_reply(request, response, RED_FORM_APPLY), RED_FORM_APPLY)

    def parse_red_form_confirm(self, request: HttpRequest, response: HttpResponse) -> RedForm:
        return m.red_form(self.open_reply(request, response, RED_FORM_CONFIRM), RED_FORM_CONFIRM)

    def parse_red_form_query(self, request: HttpRequest, response: HttpResponse) -> RedForm:
        return m.red_form(self.open_reply(request, response, RED_FORM_QUERY), RED_FORM_QUERY)

    def parse_void(self, request: HttpRequest, response: HttpResponse) -> VoidResult:
        data = self.open_reply(request, response, VOID)
        number = m.text(data.get("fphm")) or str(self._sent_payload(request)["fphm"])
        return VoidResult(invoice_number=number, status=InvoiceStatus.VOIDED)

    def parse_query_credit(self, request: HttpRequest, response: HttpResponse) -> CreditLine:
        return m.credit_line(self.open_reply(request, response, CREDIT))

    def parse_fetch_tax_codes(self, request: HttpRequest, response: HttpResponse) -> list[TaxCodeEntry]:
        return m.tax_code_entries(self.open_reply(request, response, TAX_CODES))
