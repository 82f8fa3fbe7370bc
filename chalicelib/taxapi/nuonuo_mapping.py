"""Nuonuo ↔ project mappings: request fields, reply fields, status codes, red-form states, red reasons.

This module owns what Nuonuo's fields mean (``docs/nuonuo.md``, field mapping tables): an
``InvoiceOrder`` → the ``order`` of requestBillingNew and its ``invoiceDetail`` rows, a red form
request → saveInvoiceRedConfirm's payload, and the replies of queryInvoiceResult,
queryInvoiceRedConfirm and the credit / stock methods → typed results. Kept apart from
:mod:`chalicelib.taxapi.nuonuo` (the provider: configuration, checks, which method to call) and from
:mod:`chalicelib.taxapi.nuonuo_wire` (signature, envelope, error codes) so the tables read as data
and tests can walk them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from chalicelib.domain.errors import AmbiguousTaxError, PermanentTaxError
from chalicelib.domain.models import InvoiceLine, InvoiceOrder, InvoiceType, RedReason, ZeroRateFlag
from chalicelib.taxapi import nuonuo_wire as wire
from chalicelib.taxapi.base import (
    CreditLine,
    InvoiceResult,
    InvoiceStatus,
    RedForm,
    RedFormAction,
    RedFormRequest,
    RedFormState,
)

SELLER = "0"  # identity / applySource

#: 数电 red reasons (ours) → Nuonuo ``redReason`` (1 销货退回, 2 开票有误, 3 服务中止, 4 销售折让).
RED_REASON_TO_NUONUO: Mapping[RedReason, str] = {
    RedReason.WRONG_INVOICE: "2",  # 01 开票有误
    RedReason.RETURN: "1",  # 02 销货退回
    RedReason.SERVICE_STOPPED: "3",  # 03 服务中止
    RedReason.ALLOWANCE: "4",  # 04 销售折让
}
RED_REASON_FROM_NUONUO: Mapping[str, RedReason] = {v: k for k, v in RED_REASON_TO_NUONUO.items()}

#: queryInvoiceResult ``status`` → neutral status.
STATUS_MAP: Mapping[str, InvoiceStatus] = {
    "20": InvoiceStatus.PENDING,  # 开票中
    "21": InvoiceStatus.PENDING,  # 开票成功签章中
    "2": InvoiceStatus.ISSUED,  # 开票完成（最终状态）
    "22": InvoiceStatus.FAILED,  # 开票失败
    "24": InvoiceStatus.PENDING,  # 开票成功签章失败: issued at the bureau, never re-issue; reInvoice
    "3": InvoiceStatus.VOIDED,  # 发票已作废
    "31": InvoiceStatus.VOIDING,  # 发票作废中
}

#: queryInvoiceRedConfirm ``billStatus`` → form state. 15 申请中 has no 数电 code: it is reported as
#: WAITING_BUYER (not yet usable, keep polling) with provider_status "15"; 16 申请失败 raises.
RED_FORM_STATES: Mapping[str, RedFormState] = {
    **{state.value: state for state in RedFormState},
    "15": RedFormState.WAITING_BUYER,
}
RED_FORM_APPLYING, RED_FORM_APPLY_FAILED = "15", "16"

#: What a successful confirm / cancel call implies (the reply carries no state; query to be sure).
ACTION_STATES: Mapping[RedFormAction, RedFormState] = {
    RedFormAction.CONFIRM: RedFormState.CONFIRMED,
    RedFormAction.REJECT: RedFormState.VOIDED_BUYER,  # 06 作废（购方录入销方否认）
    RedFormAction.CANCEL: RedFormState.VOIDED_OTHER_08,  # 08 作废（发起方已撤销）
}

#: 数电 preferential codes implied by a zero-rate flag when no favoured_policy is given.
ZERO_RATE_POLICY: Mapping[ZeroRateFlag, str] = {ZeroRateFlag.EXEMPT: "03", ZeroRateFlag.NOT_TAXABLE: "04"}
INVOICE_NUMBER_RE = re.compile(r"^\d{20}$")


# --- field helpers -----------------------------------------------------------------------------
def joined(*parts: str | None) -> str | None:
    joined_text = " ".join(p.strip() for p in parts if p and p.strip())
    return joined_text or None


def next_is_discount(lines: tuple[InvoiceLine, ...], index: int) -> bool:
    return index + 1 < len(lines) and lines[index + 1].is_discount and not lines[index].is_discount


def text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return str(value)
    return ""


def invoice_number(item: Mapping[str, Any]) -> str | None:
    """The 20-digit 数电 number: ``allElectronicInvoiceNumber`` (the PDF's table also shows the
    truncated ``allElectronicInvoiceNumbe``, which some SDKs use), else a 20-digit ``invoiceNo``."""
    for key in ("allElectronicInvoiceNumber", "allElectronicInvoiceNumbe", "invoiceNo"):
        value = text(item.get(key))
        if INVOICE_NUMBER_RE.match(value):
            return value
    return None


def sum_field(details: object, key: str) -> Decimal | None:
    if not isinstance(details, list) or not details:
        return None
    total = Decimal(0)
    for row in details:
        if isinstance(row, dict):
            total += wire.to_decimal(row.get(key), key) or Decimal(0)
    return total


def optional(payload: dict[str, Any], **values: str | None) -> dict[str, Any]:
    """Set each non-empty value on ``payload`` (Nuonuo wants optional fields left out, not blank)."""
    for key, value in values.items():
        if value:
            payload[key] = value
    return payload


# --- requests ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoreFields:
    """What the request fields take from the store: its Nuonuo seller tax id, the ``invoiceLine``
    (``pc``, ``bs`` …) of each invoice type, and its options (department, clerk, push mode, callback …)."""

    seller_tax_id: str
    invoice_lines: Mapping[InvoiceType, str]
    options: Mapping[str, str]

    def invoice_line(self, invoice_type: InvoiceType) -> str:
        return self.invoice_lines[invoice_type]


def order_fields(order: InvoiceOrder, serial: str, now: datetime, store: StoreFields) -> dict[str, Any]:
    """``order`` of requestBillingNew (field mapping table in docs/nuonuo.md)."""
    buyer, seller = order.buyer, order.seller
    payload: dict[str, Any] = {"buyerName": buyer.name}
    optional(
        payload,
        buyerTaxNum=buyer.tax_id,
        buyerTel=buyer.phone,
        buyerAddress=buyer.address,
        buyerAccount=joined(buyer.bank, buyer.account),
    )
    payload["salerTaxNum"] = store.seller_tax_id
    optional(
        payload,
        salerTel=seller.phone,
        salerAddress=seller.address,
        salerAccount=joined(seller.bank, seller.account),
    )
    payload["orderNo"] = serial
    payload["invoiceDate"] = wire.china_time(now)
    optional(
        payload,
        departmentId=store.options.get("department_id"),
        clerkId=store.options.get("clerk_id"),
        remark=order.remark,
        checker=order.reviewer,
        payee=order.payee,
    )
    payload["clerk"] = order.issuer
    payload["pushMode"] = store.options.get("push_mode", "-1")
    optional(payload, buyerPhone=buyer.mobile, email=buyer.email)
    payload["invoiceType"] = "1"
    payload["invoiceLine"] = store.invoice_line(order.invoice_type)
    optional(
        payload,
        callBackUrl=store.options.get("callback_url"),
        extensionNumber=store.options.get("extension_number"),
    )
    payload["invoiceDetail"] = [
        detail_fields(line, discounted=next_is_discount(order.lines, i)) for i, line in enumerate(order.lines)
    ]
    return payload


def detail_fields(line: InvoiceLine, *, discounted: bool = False) -> dict[str, Any]:
    """One ``invoiceDetail``: excl.-tax unit price (withTaxFlag 0) and all three amounts."""
    detail: dict[str, Any] = {"goodsName": line.name, "goodsCode": line.tax_code}
    optional(detail, selfCode=line.sku)
    detail["withTaxFlag"] = "0"
    if line.unit_price is not None and line.quantity is not None:
        detail["price"] = wire.plain(line.unit_price)
        detail["num"] = wire.plain(line.quantity)
    optional(detail, unit=line.unit, specType=line.specification)
    detail["tax"] = wire.money(line.tax)
    detail["taxRate"] = wire.plain(line.tax_rate)
    detail["taxExcludedAmount"] = wire.money(line.amount)
    detail["taxIncludedAmount"] = wire.money(line.total)
    detail["invoiceLineProperty"] = "1" if line.is_discount else ("2" if discounted else "0")
    policy = line.favoured_policy or (ZERO_RATE_POLICY.get(line.zero_rate_flag) if line.zero_rate_flag else None)
    optional(detail, favouredPolicyFlag=policy)
    return detail


def red_form_fields(form: RedFormRequest, store: StoreFields) -> dict[str, Any]:
    """saveInvoiceRedConfirm's payload as the seller (the serial and the seller are checked by the caller)."""
    payload: dict[str, Any] = {
        "billId": form.serial,
        "blueInvoiceLine": store.invoice_line(form.order.invoice_type),
        "applySource": SELLER,
        "blueElecInvoiceNumber": form.original_invoice_number,
        "sellerTaxNo": store.seller_tax_id,
        "sellerName": form.order.seller.name,
    }
    optional(payload, buyerTaxNo=form.buyer_tax_id)
    payload["buyerName"] = form.buyer_name
    payload["redReason"] = RED_REASON_TO_NUONUO[form.reason]
    optional(
        payload,
        extensionNumber=store.options.get("extension_number"),
        departmentId=store.options.get("department_id"),
        clerkId=store.options.get("clerk_id"),
    )
    payload["orderNo"] = form.serial
    optional(payload, callbackUrl=store.options.get("callback_url"))
    payload["detail"] = [red_detail(i, line) for i, line in enumerate(form.order.lines)]
    return payload


def red_detail(index: int, line: InvoiceLine) -> dict[str, Any]:
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
    optional(detail, unit=line.unit, specType=line.specification)
    if line.quantity is not None and line.unit_price is not None:
        detail["num"] = wire.plain(-abs(line.quantity))
        detail["taxExcludedPrice"] = wire.plain(abs(line.unit_price))
    detail["taxExcludedAmount"] = wire.money(-abs(line.amount))
    detail["taxAmount"] = wire.money(-abs(line.tax))
    detail["taxRate"] = wire.plain(line.tax_rate)
    detail["goodsCode"] = line.tax_code
    policy = line.favoured_policy or (ZERO_RATE_POLICY.get(line.zero_rate_flag) if line.zero_rate_flag else None)
    optional(detail, favouredPolicyFlag=policy)
    return detail


def red_invoice_fields(order: InvoiceOrder, serial: str, now: datetime, store: StoreFields) -> dict[str, Any]:
    """fastInvoiceRed's payload (the order is checked by the caller)."""
    payload: dict[str, Any] = {"orderNo": serial, "orderTime": wire.china_time(now), "taxNum": store.seller_tax_id}
    optional(
        payload,
        extensionNumber=store.options.get("extension_number"),
        clerkId=store.options.get("clerk_id"),
        deptId=store.options.get("department_id"),
    )
    payload["elecInvoiceNumber"] = order.original_invoice_number
    payload["billId"] = order.red_form_id
    payload["invoiceLine"] = store.invoice_line(order.invoice_type)
    optional(payload, callBackUrl=store.options.get("callback_url"))
    return payload


# --- replies -----------------------------------------------------------------------------------
def invoice_result(item: object) -> InvoiceResult:
    """One item of queryInvoiceResult's ``result``."""
    if not isinstance(item, dict):
        raise AmbiguousTaxError("queryInvoiceResult: an item is not an object", code="tax_garbled")
    order_no = text(item.get("orderNo"))
    if not order_no:
        raise AmbiguousTaxError("queryInvoiceResult: an item lacks orderNo", code="tax_garbled")
    raw = text(item.get("status"))
    status = STATUS_MAP.get(raw, InvoiceStatus.PENDING)
    number = invoice_number(item)
    failure = text(item.get("failCause")) or None
    if status is InvoiceStatus.ISSUED and number is None:
        # an issued 数电票 always has its 20-digit number: without it, poll again
        status, failure = InvoiceStatus.PENDING, "issued without a 20-digit number yet"
    if raw not in STATUS_MAP:
        failure = failure or f"unknown Nuonuo status {raw!r}: {text(item.get('statusMsg'))}"
    if raw in ("22", "24") and not failure:
        failure = text(item.get("statusMsg")) or None
    return InvoiceResult(
        serial=order_no,
        order_no=None,
        status=status,
        invoice_number=number,
        issued_at=wire.epoch_ms_to_datetime(item.get("invoiceTime")),
        total_amount=wire.to_decimal(item.get("exTaxAmount"), "exTaxAmount"),
        total_tax=wire.to_decimal(item.get("taxAmount"), "taxAmount"),
        pdf_url=text(item.get("pdfUrl")) or None,
        ofd_url=text(item.get("ofdUrl")) or None,
        xml_url=text(item.get("xmlUrl")) or None,
        failure_reason=failure,
        provider_status=raw or None,
    )


def applied_red_form(result: Any, payload: Mapping[str, Any]) -> RedForm:
    """saveInvoiceRedConfirm's ``result`` (the billId) read with the ``payload`` that was sent."""
    bill_id = result if isinstance(result, str) and result else text(payload.get("billId"))
    if isinstance(result, dict):
        bill_id = text(result.get("billId")) or bill_id
    if not bill_id:
        raise AmbiguousTaxError("saveInvoiceRedConfirm: success without billId", code="tax_garbled")
    details = payload.get("detail") or []
    return RedForm(
        form_id=bill_id,
        state=RED_FORM_STATES[RED_FORM_APPLYING],
        original_invoice_number=text(payload.get("blueElecInvoiceNumber")) or None,
        red_amount=sum_field(details, "taxExcludedAmount"),
        red_tax=sum_field(details, "taxAmount"),
        provider_status=RED_FORM_APPLYING,
    )


def queried_red_form(result: Any, bill_id: str) -> RedForm:
    """Form ``bill_id`` in queryInvoiceRedConfirm's ``result``; a refused (16) or missing form raises."""
    forms = result.get("list") if isinstance(result, dict) else None
    if not isinstance(forms, list):
        raise AmbiguousTaxError("queryInvoiceRedConfirm: result has no list", code="tax_garbled")
    match = next((f for f in forms if isinstance(f, dict) and text(f.get("billId")) == bill_id), None)
    if match is None:
        if forms:
            raise AmbiguousTaxError("queryInvoiceRedConfirm: the reply names another form", code="tax_garbled")
        raise PermanentTaxError(
            f"queryInvoiceRedConfirm: no form {bill_id}", provider_code="E9500", code="tax_not_found"
        )
    raw = text(match.get("billStatus"))
    if raw == RED_FORM_APPLY_FAILED:
        reason = text(match.get("billMessage")) or "申请失败"
        raise PermanentTaxError(f"red form {bill_id} was refused: {reason}", provider_code=raw, code="red_form_failed")
    state = RED_FORM_STATES.get(raw)
    if state is None:
        raise AmbiguousTaxError(f"queryInvoiceRedConfirm: unknown billStatus {raw!r}", code="tax_garbled")
    return RedForm(
        form_id=bill_id,
        state=state,
        original_invoice_number=text(match.get("blueElecInvoiceNumber") or match.get("blueInvoiceNumber")) or None,
        red_amount=wire.to_decimal(match.get("taxExcludedAmount"), "taxExcludedAmount"),
        red_tax=wire.to_decimal(match.get("taxAmount"), "taxAmount"),
        provider_status=raw,
    )


def credit_line(result: Any, *, from_credit_line: bool) -> CreditLine:
    """``stock``: Σ remainNum over the rows (a number of invoices, not yuan) → total = remaining,
    used = 0. ``credit_line`` (getCreditLine): total/used/available credit line in yuan (excl. tax)."""
    if from_credit_line:
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
