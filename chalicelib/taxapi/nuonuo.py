"""Nuonuo (诺诺) open platform: the ``Provider`` for 数电票 issued through Nuonuo, sans-IO.

Follows Nuonuo's official API text (``shared/reference/nuonuo/``) and, for the 数电 red confirmation
form flow that text does not cover, Nuonuo's 诺税通 SaaS documents (``nuonuo.OpeMplatform.*``).
Wire details (signature, envelope, error codes) live in :mod:`chalicelib.taxapi.nuonuo_wire`; token
handling in :mod:`chalicelib.taxapi.tokens`. ``docs/nuonuo.md`` maps every field and lists every
assumption.

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

import secrets
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
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
    Provider,
    RedForm,
    RedFormAction,
    RedFormRequest,
    TaxCodeEntry,
    VoidResult,
)

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

SELLER = "0"  # identity / applySource
MAX_ORDER_NO = 20
MAX_QUERY = 50


def _default_senid() -> str:
    return uuid.uuid4().hex


def _default_nonce() -> str:
    return str(10_000_000 + secrets.randbelow(90_000_000))


class NuonuoProvider(Provider):
    """Nuonuo's protocol for one store. Credentials: ``app_key``, ``app_secret`` (+ optional fixed
    ``access_token``). The token (from :class:`chalicelib.taxapi.tokens.TokenCache`) is given per
    provider instance: build one per call or use :meth:`with_access_token`."""

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
        self._senid = senid_factory or _default_senid
        self._nonce = nonce_factory or _default_nonce
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

    def _optional(self, payload: dict[str, Any], **values: str | None) -> dict[str, Any]:
        for key, value in values.items():
            if value:
                payload[key] = value
        return payload

    def _line_kind(self, invoice_type: InvoiceType) -> str:
        return self.invoice_lines[invoice_type]

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
        buyer, seller = order.buyer, order.seller
        payload: dict[str, Any] = {"buyerName": buyer.name}
        self._optional(
            payload,
            buyerTaxNum=buyer.tax_id,
            buyerTel=buyer.phone,
            buyerAddress=buyer.address,
            buyerAccount=m.joined(buyer.bank, buyer.account),
        )
        payload["salerTaxNum"] = self.seller_tax_id
        self._optional(
            payload,
            salerTel=seller.phone,
            salerAddress=seller.address,
            salerAccount=m.joined(seller.bank, seller.account),
        )
        payload["orderNo"] = serial
        payload["invoiceDate"] = wire.china_time(now)
        self._optional(
            payload,
            departmentId=self.options.get("department_id"),
            clerkId=self.options.get("clerk_id"),
            remark=order.remark,
            checker=order.reviewer,
            payee=order.payee,
        )
        payload["clerk"] = order.issuer
        payload["pushMode"] = self.options.get("push_mode", "-1")
        self._optional(payload, buyerPhone=buyer.mobile, email=buyer.email)
        payload["invoiceType"] = "1"
        payload["invoiceLine"] = self._line_kind(order.invoice_type)
        self._optional(
            payload,
            callBackUrl=self.options.get("callback_url"),
            extensionNumber=self.options.get("extension_number"),
        )
        payload["invoiceDetail"] = [
            self.detail_payload(line, discounted=m.next_is_discount(order.lines, i))
            for i, line in enumerate(order.lines)
        ]
        return payload

    def detail_payload(self, line: InvoiceLine, *, discounted: bool = False) -> dict[str, Any]:
        """One ``invoiceDetail``: excl.-tax unit price (withTaxFlag 0) and all three amounts."""
        detail: dict[str, Any] = {"goodsName": line.name, "goodsCode": line.tax_code}
        self._optional(detail, selfCode=line.sku)
        detail["withTaxFlag"] = "0"
        if line.unit_price is not None and line.quantity is not None:
            detail["price"] = wire.plain(line.unit_price)
            detail["num"] = wire.plain(line.quantity)
        self._optional(detail, unit=line.unit, specType=line.specification)
        detail["tax"] = wire.money(line.tax)
        detail["taxRate"] = wire.plain(line.tax_rate)
        detail["taxExcludedAmount"] = wire.money(line.amount)
        detail["taxIncludedAmount"] = wire.money(line.total)
        detail["invoiceLineProperty"] = "1" if line.is_discount else ("2" if discounted else "0")
        policy = line.favoured_policy or (m.ZERO_RATE_POLICY.get(line.zero_rate_flag) if line.zero_rate_flag else None)
        self._optional(detail, favouredPolicyFlag=policy)
        return detail

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
        return [self._invoice_result(item) for item in result]

    def _invoice_result(self, item: object) -> InvoiceResult:
        if not isinstance(item, dict):
            raise AmbiguousTaxError("queryInvoiceResult: an item is not an object", code="tax_garbled")
        order_no = m.text(item.get("orderNo"))
        if not order_no:
            raise AmbiguousTaxError("queryInvoiceResult: an item lacks orderNo", code="tax_garbled")
        raw = m.text(item.get("status"))
        status = m.STATUS_MAP.get(raw, InvoiceStatus.PENDING)
        number = m.invoice_number(item)
        failure = m.text(item.get("failCause")) or None
        if status is InvoiceStatus.ISSUED and number is None:
            # an issued 数电票 always has its 20-digit number: without it, poll again
            status, failure = InvoiceStatus.PENDING, "issued without a 20-digit number yet"
        if raw not in m.STATUS_MAP:
            failure = failure or f"unknown Nuonuo status {raw!r}: {m.text(item.get('statusMsg'))}"
        if raw in ("22", "24") and not failure:
            failure = m.text(item.get("statusMsg")) or None
        return InvoiceResult(
            serial=order_no,
            order_no=None,
            status=status,
            invoice_number=number,
            issued_at=wire.epoch_ms_to_datetime(item.get("invoiceTime")),
            total_amount=wire.to_decimal(item.get("exTaxAmount"), "exTaxAmount"),
            total_tax=wire.to_decimal(item.get("taxAmount"), "taxAmount"),
            pdf_url=m.text(item.get("pdfUrl")) or None,
            ofd_url=m.text(item.get("ofdUrl")) or None,
            xml_url=m.text(item.get("xmlUrl")) or None,
            failure_reason=failure,
            provider_status=raw or None,
        )

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
        payload: dict[str, Any] = {
            "billId": form.serial,
            "blueInvoiceLine": self._line_kind(form.order.invoice_type),
            "applySource": SELLER,
            "blueElecInvoiceNumber": form.original_invoice_number,
            "sellerTaxNo": self.seller_tax_id,
            "sellerName": form.order.seller.name,
        }
        self._optional(payload, buyerTaxNo=form.buyer_tax_id)
        payload["buyerName"] = form.buyer_name
        payload["redReason"] = m.RED_REASON_TO_NUONUO[form.reason]
        self._optional(
            payload,
            extensionNumber=self.options.get("extension_number"),
            departmentId=self.options.get("department_id"),
            clerkId=self.options.get("clerk_id"),
        )
        payload["orderNo"] = form.serial
        self._optional(payload, callbackUrl=self.options.get("callback_url"))
        payload["detail"] = [self._red_detail(i, line) for i, line in enumerate(form.order.lines)]
        return self._request(RED_FORM_APPLY, payload, now, idempotent=False)

    def _red_detail(self, index: int, line: InvoiceLine) -> dict[str, Any]:
        if line.is_discount:
            raise PermanentTaxError(
                "nuonuo: red forms carry no discount lines", field=f"lines[{index}].is_discount", code="red_discount"
            )
        if line.original_line_no is None or line.original_line_no < 1:
            raise PermanentTaxError(
                "nuonuo: every red line names its blue line",
                field=f"lines[{index}].original_line_no",
                code="missing_original_line",
            )
        detail: dict[str, Any] = {"blueDetailIndex": str(line.original_line_no), "goodsName": line.name}
        self._optional(detail, unit=line.unit, specType=line.specification)
        if line.quantity is not None and line.unit_price is not None:
            detail["num"] = wire.plain(-abs(line.quantity))
            detail["taxExcludedPrice"] = wire.plain(abs(line.unit_price))
        detail["taxExcludedAmount"] = wire.money(-abs(line.amount))
        detail["taxAmount"] = wire.money(-abs(line.tax))
        detail["taxRate"] = wire.plain(line.tax_rate)
        detail["goodsCode"] = line.tax_code
        policy = line.favoured_policy or (m.ZERO_RATE_POLICY.get(line.zero_rate_flag) if line.zero_rate_flag else None)
        self._optional(detail, favouredPolicyFlag=policy)
        return detail

    def parse_red_form_apply(self, request: HttpRequest, response: HttpResponse) -> RedForm:
        result = wire.unwrap(request, response)
        payload = wire.request_payload(request)
        bill_id = result if isinstance(result, str) and result else m.text(payload.get("billId"))
        if isinstance(result, dict):
            bill_id = m.text(result.get("billId")) or bill_id
        if not bill_id:
            raise AmbiguousTaxError("saveInvoiceRedConfirm: success without billId", code="tax_garbled")
        details = payload.get("detail") or []
        return RedForm(
            form_id=bill_id,
            state=m.RED_FORM_STATES[m.RED_FORM_APPLYING],
            original_invoice_number=m.text(payload.get("blueElecInvoiceNumber")) or None,
            red_amount=m.sum_field(details, "taxExcludedAmount"),
            red_tax=m.sum_field(details, "taxAmount"),
            provider_status=m.RED_FORM_APPLYING,
        )

    def build_red_form_confirm(self, form_id: str, action: RedFormAction, now: datetime) -> HttpRequest:
        payload: dict[str, Any] = {"billId": form_id, "identity": SELLER}
        self._optional(payload, extensionNumber=self.options.get("extension_number"))
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
        forms = result.get("list") if isinstance(result, dict) else None
        if not isinstance(forms, list):
            raise AmbiguousTaxError("queryInvoiceRedConfirm: result has no list", code="tax_garbled")
        match = next((f for f in forms if isinstance(f, dict) and m.text(f.get("billId")) == bill_id), None)
        if match is None:
            if forms:
                raise AmbiguousTaxError("queryInvoiceRedConfirm: the reply names another form", code="tax_garbled")
            raise PermanentTaxError(
                f"queryInvoiceRedConfirm: no form {bill_id}", provider_code="E9500", code="tax_not_found"
            )
        raw = m.text(match.get("billStatus"))
        if raw == m.RED_FORM_APPLY_FAILED:
            reason = m.text(match.get("billMessage")) or "申请失败"
            raise PermanentTaxError(
                f"red form {bill_id} was refused: {reason}", provider_code=raw, code="red_form_failed"
            )
        state = m.RED_FORM_STATES.get(raw)
        if state is None:
            raise AmbiguousTaxError(f"queryInvoiceRedConfirm: unknown billStatus {raw!r}", code="tax_garbled")
        return RedForm(
            form_id=bill_id,
            state=state,
            original_invoice_number=m.text(match.get("blueElecInvoiceNumber") or match.get("blueInvoiceNumber"))
            or None,
            red_amount=wire.to_decimal(match.get("taxExcludedAmount"), "taxExcludedAmount"),
            red_tax=wire.to_decimal(match.get("taxAmount"), "taxAmount"),
            provider_status=raw,
        )

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
        payload: dict[str, Any] = {"orderNo": serial, "orderTime": wire.china_time(now), "taxNum": self.seller_tax_id}
        self._optional(
            payload,
            extensionNumber=self.options.get("extension_number"),
            clerkId=self.options.get("clerk_id"),
            deptId=self.options.get("department_id"),
        )
        payload["elecInvoiceNumber"] = order.original_invoice_number
        payload["billId"] = order.red_form_id
        payload["invoiceLine"] = self._line_kind(order.invoice_type)
        self._optional(payload, callBackUrl=self.options.get("callback_url"))
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
            payload = self._optional({"queryType": "1"}, extensionNumber=self.options.get("extension_number"))
            return self._request(CREDIT_LINE, payload, now, idempotent=True)
        payload = self._optional({}, departmentId=self.options.get("department_id"))
        return self._request(self.stock_method, payload, now, idempotent=True)

    def parse_query_credit(self, request: HttpRequest, response: HttpResponse) -> CreditLine:
        """``stock``: Σ remainNum over the rows (a number of invoices, not yuan) → total = remaining,
        used = 0. ``credit_line``: total/used/available credit line in yuan (excl. tax)."""
        result = wire.unwrap(request, response)
        if request.operation == CREDIT_LINE:
            if not isinstance(result, dict):
                raise AmbiguousTaxError("getCreditLine: result is not an object", code="tax_garbled")
            remaining = wire.to_decimal(result.get("availableCreditLine"), "availableCreditLine")
            if remaining is None:
                raise AmbiguousTaxError("getCreditLine: no availableCreditLine yet", code="tax_garbled")
            used = wire.to_decimal(result.get("usedCreditLine"), "usedCreditLine") or Decimal(0)
            total = wire.to_decimal(result.get("totalCreditLine"), "totalCreditLine") or remaining + used
            return CreditLine(total=total, used=used, remaining=remaining)
        if result is None:
            result = []
        if not isinstance(result, list):
            raise AmbiguousTaxError("getInvoiceStock: result is not a list", code="tax_garbled")
        remain = Decimal(0)
        for row in result:
            if not isinstance(row, dict):
                raise AmbiguousTaxError("getInvoiceStock: a row is not an object", code="tax_garbled")
            remain += wire.to_decimal(row.get("remainNum"), "remainNum") or Decimal(0)
        return CreditLine(total=remain, used=Decimal(0), remaining=remain)

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
        self._optional(payload, fpqqlsh=provider_ref)
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
        payload = self._optional({"taxnum": self.seller_tax_id, "invoiceNum": invoice_number}, phone=phone, mail=mail)
        return self._request(self.deliver_method, payload, now, idempotent=True)

    def parse_redeliver(self, request: HttpRequest, response: HttpResponse) -> None:
        wire.unwrap(request, response)
