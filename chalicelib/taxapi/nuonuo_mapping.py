"""Nuonuo ↔ project mappings: status codes, red-form states, red reasons and reply-field helpers.

Kept apart from :mod:`chalicelib.taxapi.nuonuo` so the tables read as data and tests can walk them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from chalicelib.domain.models import InvoiceLine, RedReason, ZeroRateFlag
from chalicelib.taxapi import nuonuo_wire as wire
from chalicelib.taxapi.base import InvoiceStatus, RedFormAction, RedFormState

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


# --- reply helpers -----------------------------------------------------------------------------
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
