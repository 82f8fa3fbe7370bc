"""Nuonuo (诺诺) open platform: the ``Provider`` for 数电票 issued through Nuonuo, sans-IO.

Follows Nuonuo's official API text (``shared/reference/nuonuo/``) and, for the 数电 red confirmation
form flow that text does not cover, Nuonuo's 诺税通 SaaS documents (``nuonuo.OpeMplatform.*``).
This module owns :class:`NuonuoProvider`: the store's configuration, the checks before a request is
built, which method each operation calls and what a reply's result means for it. Wire details
(signature, envelope, error codes) live in :mod:`chalicelib.taxapi.nuonuo_wire`, the field mapping
(requests and replies) in :mod:`chalicelib.taxapi.nuonuo_mapping`, token handling in
:mod:`chalicelib.taxapi.tokens`. ``docs/nuonuo.md`` maps every field and lists every assumption.

Operations → Nuonuo methods (``method`` header):

=====================  ==============================================================
issue (blue)           ``nuonuo.ElectronInvoice.requestBillingNew``
query results          ``nuonuo.ElectronInvoice.queryInvoiceResult``
red form apply         ``nuonuo.OpeMplatform.saveInvoiceRedConfirm``
red form confirm       ``nuonuo.OpeMplatform.confirm`` (Y/N), ``…confirmInfoCancel`` (C)
red form query         ``nuonuo.OpeMplatform.queryInvoiceRedConfirm``
red invoice            ``nuonuo.OpeMplatform.fastInvoiceRed``
void                   ``nuonuo.electronInvoice.invoiceCancellation`` (数电票: not allowed)
credit / stock         ``nuonuo.ElectronInvoice.getInvoiceStock`` (or ``…getCreditLine``)
retry a failed issue   ``nuonuo.ElectronInvoice.reInvoice`` (extra, not in the interface)
re-deliver             ``nuonuo.ElectronInvoice.deliveryInvoice`` (extra)
tax codes              none: ``UnsupportedOperation``
=====================  ==============================================================

Our request serial is Nuonuo's ``orderNo`` (unique per seller, ≤ 20 characters): Nuonuo refuses a
repeated one with ``E9106`` (→ ``DuplicateTaxError``), so a resend can never issue twice.

Store options (``ProviderSettings.options``, all optional): ``method_namespace`` (``ElectronInvoice``
| ``OpeMplatform`` for the documented issue/query/void/retry methods), ``invoice_line_normal``
(``pc``), ``invoice_line_special`` (``bs``), ``push_mode`` (``-1``), ``callback_url``,
``extension_number``, ``department_id``, ``clerk_id``, ``credit_source`` (``stock`` | ``credit_line``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from chalicelib.domain.errors import (
    AmbiguousTaxError,
    ConfigurationError,
    PermanentTaxError,
    UnsupportedOperation,
)
from chalicelib.domain.models import InvoiceColour, InvoiceLine, InvoiceOrder, InvoiceType
from chalicelib.taxapi import nuonuo_mapping as m
from chalicelib.taxapi import nuonuo_wire as wire
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
from chalicelib.taxapi.nuonuo_mapping import SELLER

__all__ = [
    "CREDIT_LINE",
    "MAX_ORDER_NO",
    "MAX_QUERY",
    "PRODUCTION_ENDPOINT",
    "RED_FORM_APPLY",
    "RED_FORM_CANCEL",
    "RED_FORM_CONFIRM",
    "RED_FORM_QUERY",
    "RED_INVOICE",
    "SAAS",
    "SANDBOX_ENDPOINT",
    "SANDBOX_SELLER_TAX_ID",
    "SELLER",
    "NuonuoProvider",
]

PRODUCTION_ENDPOINT = "https://sdk.nuonuo.com/open/v1/services"
SANDBOX_ENDPOINT = "https://sandbox.nuonuocs.cn/open/v1/services"
SANDBOX_SELLER_TAX_ID = "339902999999789113"

SAAS = "nuonuo.OpeMplatform"
RED_FORM_APPLY = f"{SAAS}.saveInvoiceRedConfirm"
RED_FORM_CONFIRM = f"{SAAS}.confirm"
RED_FORM_CANCEL = f"{SAAS}.confirmInfoCancel"
RED_FORM_QUERY = f"{SAAS}.queryInvoiceRedConfirm"
RED_INVOICE = f"{SAAS}.fastInvoiceRed"
CREDIT_LINE = f"{SAAS}.getCreditLine"

MAX_ORDER_NO = 20
MAX_QUERY = 50


class NuonuoProvider:
    """Nuonuo's protocol for one store. Credentials: ``app_key``, ``app_secret`` (+ optional fixed
    ``access_token``). The token (from :class:`chalicelib.taxapi.tokens.TokenCache`) is given per
    provider instance: build one per call or use :meth:`with_access_token`. Satisfies
    :class:`~chalicelib.taxapi.base.Provider` structurally."""

    name = "nuonuo"
    capabilities = Capabilities(void=False, async_issue=True, max_query_batch=MAX_QUERY, red_form_required=True)

    def __init__(
        self,
        credentials: Credentials,
        endpoint: str,
        *,
        seller_tax_id: str,
        access_token: str | None = None,
        senid_factory: Callable[[], str] | None = None,
        nonce_factory: Callable[[], str] | None = None,
        options: Mapping[str, str] | None = None,
    ) -> None:
        if not seller_tax_id:
            raise ConfigurationError("nuonuo: seller_tax_id is required", code="missing_option")
        self._credentials = credentials
        self._url = wire.services_url(endpoint)
        self.seller_tax_id = seller_tax_id
        self._access_token = access_token
        self._senid = senid_factory or wire.default_senid
        self._nonce = nonce_factory or wire.default_nonce
        self.options: dict[str, str] = dict(options or {})
        namespace = self.options.get("method_namespace", "ElectronInvoice")
        if namespace not in ("ElectronInvoice", "OpeMplatform"):
            raise ConfigurationError("nuonuo: method_namespace must be ElectronInvoice or OpeMplatform")
        self.issue_method = f"nuonuo.{namespace}.requestBillingNew"
        self.query_method = f"nuonuo.{namespace}.queryInvoiceResult"
        self.retry_method = f"nuonuo.{namespace}.reInvoice"
        self.deliver_method = f"nuonuo.{namespace}.deliveryInvoice"
        self.stock_method = f"nuonuo.{namespace}.getInvoiceStock"
        # the official text spells this one with a lower-case "e"
        self.void_method = (
            "nuonuo.electronInvoice.invoiceCancellation"
            if namespace == "ElectronInvoice"
            else f"{SAAS}.invoiceCancellation"
        )
        self.invoice_lines: Mapping[InvoiceType, str] = {
            InvoiceType.NORMAL: self.options.get("invoice_line_normal", "pc"),
            InvoiceType.SPECIAL: self.options.get("invoice_line_special", "bs"),
        }
        credit_source = self.options.get("credit_source", "stock")
        if credit_source not in ("stock", "credit_line"):
            raise ConfigurationError("nuonuo: credit_source must be stock or credit_line")
        self.credit_source = credit_source

    def __repr__(self) -> str:
        return f"NuonuoProvider(url={self._url!r}, seller_tax_id={self.seller_tax_id!r})"

    def with_access_token(self, access_token: str) -> NuonuoProvider:
        return NuonuoProvider(
            self._credentials,
            self._url,
            seller_tax_id=self.seller_tax_id,
            access_token=access_token,
            senid_factory=self._senid,
            nonce_factory=self._nonce,
            options=self.options,
        )

    # --- plumbing ------------------------------------------------------------------------------
    def _token(self) -> str:
        token = self._access_token or self._credentials.values.get("access_token")
        if not token:
            raise ConfigurationError("nuonuo: no access token (get one from TokenCache)", code="missing_credential")
        return token

    def _request(self, method: str, payload: Mapping[str, Any], now: datetime, *, idempotent: bool) -> HttpRequest:
        timestamp = str(int(wire.require_aware(now).timestamp()))
        return wire.build_request(
            url=self._url,
            method=method,
            payload=payload,
            app_key=self._credentials.require("app_key"),
            app_secret=self._credentials.require("app_secret"),
            access_token=self._token(),
            user_tax=self.seller_tax_id,
            senid=self._senid(),
            nonce=self._nonce(),
            timestamp=timestamp,
            idempotent=idempotent,
        )

    def _store(self) -> m.StoreFields:
        """The store's side of the request fields, read at call time."""
        return m.StoreFields(self.seller_tax_id, self.invoice_lines, self.options)

    def _check_serial(self, serial: str, field: str = "orderNo") -> None:
        if not serial or len(serial) > MAX_ORDER_NO:
            raise PermanentTaxError(
                f"nuonuo: serial must be 1–{MAX_ORDER_NO} characters (it is Nuonuo's {field})",
                field=field,
                code="invalid_serial",
            )

    def _check_seller(self, order: InvoiceOrder) -> None:
        if order.seller.tax_id and order.seller.tax_id != self.seller_tax_id:
            raise ConfigurationError(
                "nuonuo: the order's seller tax id differs from the store's Nuonuo seller tax id",
                code="seller_mismatch",
            )

    # --- blue invoices -------------------------------------------------------------------------
    def build_issue(self, order: InvoiceOrder, serial: str, now: datetime) -> HttpRequest:
        if order.colour is not InvoiceColour.BLUE:
            raise PermanentTaxError(
                "nuonuo: red 数电票 are issued through the red confirmation form", field="colour", code="red_via_form"
            )
        self._check_serial(serial)
        self._check_seller(order)
        return self._request(
            self.issue_method, {"order": self.order_payload(order, serial, now)}, now, idempotent=False
        )

    def order_payload(self, order: InvoiceOrder, serial: str, now: datetime) -> dict[str, Any]:
        """``order`` of requestBillingNew (field mapping table in docs/nuonuo.md)."""
        return m.order_fields(order, serial, now, self._store())

    def detail_payload(self, line: InvoiceLine, *, discounted: bool = False) -> dict[str, Any]:
        """One ``invoiceDetail``: excl.-tax unit price (withTaxFlag 0) and all three amounts."""
        return m.detail_fields(line, discounted=discounted)

    def parse_issue(self, request: HttpRequest, response: HttpResponse) -> IssueAccepted:
        result = wire.unwrap(request, response)
        order_no = str(wire.request_payload(request).get("order", {}).get("orderNo", ""))
        ref = result.get("invoiceSerialNum") if isinstance(result, dict) else None
        if not isinstance(ref, str) or not ref:
            raise AmbiguousTaxError("requestBillingNew: success without invoiceSerialNum", code="tax_garbled")
        return IssueAccepted(serial=order_no, provider_ref=ref)

    def build_query(
        self, now: datetime, *, serials: tuple[str, ...] = (), order_nos: tuple[str, ...] = ()
    ) -> HttpRequest:
        """Our serials *are* Nuonuo's orderNos, so both tuples query ``orderNos`` (≤ 50 together)."""
        keys = list(dict.fromkeys((*serials, *order_nos)))
        if not keys:
            raise PermanentTaxError("nuonuo: query needs at least one serial", field="orderNos", code="empty_query")
        if len(keys) > MAX_QUERY:
            raise PermanentTaxError(f"nuonuo: at most {MAX_QUERY} per query", field="orderNos", code="query_too_large")
        payload = {"orderNos": keys, "isOfferInvoiceDetail": "0"}
        return self._request(self.query_method, payload, now, idempotent=True)

    def parse_query(self, request: HttpRequest, response: HttpResponse) -> list[InvoiceResult]:
        result = wire.unwrap(request, response)
        if result is None:
            return []
        if not isinstance(result, list):
            raise AmbiguousTaxError("queryInvoiceResult: result is not a list", code="tax_garbled")
        return [m.invoice_result(item) for item in result]

    # --- red confirmation form -----------------------------------------------------------------
    def build_red_form_apply(self, form: RedFormRequest, now: datetime) -> HttpRequest:
        """saveInvoiceRedConfirm as the seller. ``billId`` = our form serial (idempotent on Nuonuo's
        side) and ``orderNo`` = the same serial: Nuonuo issues the 数电 red invoice itself once the form
        needs no confirmation (01) or both sides confirmed (04), under that orderNo."""
        self._check_serial(form.serial, "billId")
        if form.seller_tax_id != self.seller_tax_id:
            raise ConfigurationError(
                "nuonuo: the form's seller tax id differs from the store's", code="seller_mismatch"
            )
        payload = m.red_form_fields(form, self._store())
        return self._request(RED_FORM_APPLY, payload, now, idempotent=False)

    def parse_red_form_apply(self, request: HttpRequest, response: HttpResponse) -> RedForm:
        result = wire.unwrap(request, response)
        return m.applied_red_form(result, wire.request_payload(request))

    def build_red_form_confirm(self, form_id: str, action: RedFormAction, now: datetime) -> HttpRequest:
        payload: dict[str, Any] = {"billId": form_id, "identity": SELLER}
        m.optional(payload, extensionNumber=self.options.get("extension_number"))
        if action is RedFormAction.CANCEL:
            return self._request(RED_FORM_CANCEL, payload, now, idempotent=True)
        payload["confirmAgreement"] = "1" if action is RedFormAction.CONFIRM else "0"
        return self._request(RED_FORM_CONFIRM, payload, now, idempotent=True)

    def parse_red_form_confirm(self, request: HttpRequest, response: HttpResponse) -> RedForm:
        wire.unwrap(request, response)
        payload = wire.request_payload(request)
        if request.operation == RED_FORM_CANCEL:
            action = RedFormAction.CANCEL
        else:
            action = RedFormAction.CONFIRM if payload.get("confirmAgreement") == "1" else RedFormAction.REJECT
        return RedForm(form_id=m.text(payload.get("billId")), state=m.ACTION_STATES[action], provider_status=None)

    def build_red_form_query(self, form_id: str, now: datetime) -> HttpRequest:
        payload = {"identity": SELLER, "billId": form_id, "pageNo": "1", "pageSize": "10"}
        return self._request(RED_FORM_QUERY, payload, now, idempotent=True)

    def parse_red_form_query(self, request: HttpRequest, response: HttpResponse) -> RedForm:
        result = wire.unwrap(request, response)
        bill_id = m.text(wire.request_payload(request).get("billId"))
        return m.queried_red_form(result, bill_id)

    # --- red invoice ---------------------------------------------------------------------------
    def build_issue_red(self, order: InvoiceOrder, serial: str, now: datetime) -> HttpRequest:
        """fastInvoiceRed. For 数电 electronic invoices (pc/bs) Nuonuo has already issued the red
        invoice when the form reached 01/04; this call then fetches it from the bureau."""
        if order.colour is not InvoiceColour.RED:
            raise PermanentTaxError("nuonuo: build_issue_red needs a red order", field="colour", code="not_red")
        self._check_serial(serial)
        self._check_seller(order)
        if not order.original_invoice_number:
            raise PermanentTaxError(
                "nuonuo: red invoice needs the blue number", field="original_invoice_number", code="missing_original"
            )
        if not order.red_form_id:
            raise PermanentTaxError("nuonuo: red invoice needs its form", field="red_form_id", code="missing_form")
        payload = m.red_invoice_fields(order, serial, now, self._store())
        return self._request(RED_INVOICE, payload, now, idempotent=False)

    def parse_issue_red(self, request: HttpRequest, response: HttpResponse) -> IssueAccepted:
        result = wire.unwrap(request, response)
        order_no = m.text(wire.request_payload(request).get("orderNo"))
        ref = result.get("invoiceSerialNum") if isinstance(result, dict) else result
        if not isinstance(ref, str) or not ref:
            raise AmbiguousTaxError("fastInvoiceRed: success without invoiceSerialNum", code="tax_garbled")
        return IssueAccepted(serial=order_no, provider_ref=ref)

    # --- void ----------------------------------------------------------------------------------
    def build_void(self, invoice_number: str, serial: str, now: datetime) -> HttpRequest:
        """invoiceCancellation. ``serial`` must be Nuonuo's invoice serial (``IssueAccepted.provider_ref``).
        数电票 cannot be voided (``capabilities.void`` is False); the call exists for completeness."""
        payload = {"invoiceId": serial, "invoiceCode": "", "invoiceNo": invoice_number}
        return self._request(self.void_method, payload, now, idempotent=True)

    def parse_void(self, request: HttpRequest, response: HttpResponse) -> VoidResult:
        wire.unwrap(request, response)
        number = m.text(wire.request_payload(request).get("invoiceNo"))
        return VoidResult(invoice_number=number, status=InvoiceStatus.VOIDING)

    # --- credit line ---------------------------------------------------------------------------
    def build_query_credit(self, now: datetime) -> HttpRequest:
        if self.credit_source == "credit_line":
            payload = m.optional({"queryType": "1"}, extensionNumber=self.options.get("extension_number"))
            return self._request(CREDIT_LINE, payload, now, idempotent=True)
        payload = m.optional({}, departmentId=self.options.get("department_id"))
        return self._request(self.stock_method, payload, now, idempotent=True)

    def parse_query_credit(self, request: HttpRequest, response: HttpResponse) -> CreditLine:
        """``stock``: Σ remainNum over the rows (a number of invoices, not yuan) → total = remaining,
        used = 0. ``credit_line``: total/used/available credit line in yuan (excl. tax)."""
        result = wire.unwrap(request, response)
        return m.credit_line(result, from_credit_line=request.operation == CREDIT_LINE)

    # --- tax codes -----------------------------------------------------------------------------
    def build_fetch_tax_codes(self, now: datetime, *, page: int = 1) -> HttpRequest:
        raise UnsupportedOperation("nuonuo: the open platform publishes no tax classification code method")

    def parse_fetch_tax_codes(self, request: HttpRequest, response: HttpResponse) -> list[TaxCodeEntry]:
        raise UnsupportedOperation("nuonuo: the open platform publishes no tax classification code method")

    # --- extras (not in the Provider interface) ------------------------------------------------
    def build_retry(self, serial: str, now: datetime, *, provider_ref: str | None = None) -> HttpRequest:
        """reInvoice: re-run a failed (22) or signing-failed (24) issue under the same orderNo.
        Nuonuo allows 20 retries per serial a day (E9613 → PermanentTaxError)."""
        self._check_serial(serial)
        payload: dict[str, Any] = {}
        m.optional(payload, fpqqlsh=provider_ref)
        payload["orderno"] = serial
        return self._request(self.retry_method, payload, now, idempotent=True)

    def parse_retry(self, request: HttpRequest, response: HttpResponse) -> None:
        wire.unwrap(request, response)

    def build_redeliver(
        self, invoice_number: str, now: datetime, *, phone: str | None = None, mail: str | None = None
    ) -> HttpRequest:
        """deliveryInvoice: send an issued invoice again by SMS and/or e-mail."""
        if not phone and not mail:
            raise PermanentTaxError("nuonuo: re-delivery needs a phone or an e-mail", field="phone", code="no_channel")
        payload = m.optional({"taxnum": self.seller_tax_id, "invoiceNum": invoice_number}, phone=phone, mail=mail)
        return self._request(self.deliver_method, payload, now, idempotent=True)

    def parse_redeliver(self, request: HttpRequest, response: HttpResponse) -> None:
        wire.unwrap(request, response)
