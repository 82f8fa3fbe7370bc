"""The sandbox ledger's records and vocabulary: invoice and red form records, their statuses, and
``Refusal``, the protocol-neutral business refusal each front end maps to its own error code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from chalicelib.sandbox.draft import Draft, Line

ZERO = Decimal(0)

# Refusal kinds (protocol neutral).
FIELD = "FIELD"
AMOUNT = "AMOUNT"
TAXCODE = "TAXCODE"
LIMIT = "LIMIT"
AUTH = "AUTH"
NOT_FOUND = "NOT_FOUND"
UNSUPPORTED = "UNSUPPORTED"

PENDING, ISSUED, FAILED = "pending", "issued", "failed"
VOIDED = "voided"  # voided on the platform's own workbench (POST /admin/invoices/void): the status sync's tests
FORM_OPEN = ("01", "02", "03", "04")


class Refusal(Exception):
    def __init__(self, kind: str, message: str, field: str = "", nuonuo_code: str = "E4000") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.field = field
        self.nuonuo_code = nuonuo_code


def money(d: Decimal) -> str:
    return f"{d:.2f}"


# --- records --------------------------------------------------------------------------------------


@dataclass
class InvoiceRecord:
    protocol: str  # sta | nuonuo
    serial: str  # fpqqlsh (sta) / orderNo (nuonuo): the idempotency key
    order_no: str  # ddh (sta) / orderNo (nuonuo)
    provider_ref: str  # 受理流水号 slh / invoiceSerialNum
    seller_tax_id: str
    red: bool
    special: bool
    draft: Draft
    amount: Decimal
    tax: Decimal
    total: Decimal
    accepted_at: float
    ready_at: float
    will_fail: bool = False
    status: str = PENDING
    number: str = ""
    issued_at: float | None = None
    failure: str = ""
    blue_number: str = ""  # red: the blue invoice it reverses
    form_id: str = ""  # red: the confirmation form used
    raw: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    delivered_to: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "serial": self.serial,
            "order_no": self.order_no,
            "provider_ref": self.provider_ref,
            "seller_tax_id": self.seller_tax_id,
            "kind": "red" if self.red else "blue",
            "special": self.special,
            "status": self.status,
            "number": self.number,
            "amount": money(self.amount),
            "tax": money(self.tax),
            "total": money(self.total),
            "accepted_at": self.accepted_at,
            "issued_at": self.issued_at,
            "failure": self.failure,
            "blue_number": self.blue_number,
            "form_id": self.form_id,
            "buyer_name": self.draft.buyer_name,
            "buyer_tax_id": self.draft.buyer_tax_id,
            "lines": len(self.draft.lines),
            "warnings": self.warnings,
        }


@dataclass
class RedFormRecord:
    form_id: str  # 红字确认单编号 hzqrdbh / billNo
    uuid: str  # billUuid
    serial: str  # sqlsh / billId (our idempotency key)
    protocol: str
    seller_tax_id: str
    buyer_tax_id: str
    buyer_name: str
    blue_number: str
    reason: str
    amount: Decimal  # negative
    tax: Decimal  # negative
    lines: list[Line]
    state: str
    applied_at: float
    apply_source: str = "0"  # 0 seller, 1 buyer
    confirmed_at: float | None = None
    red_serial: str = ""  # the red invoice issued with it
    auto_order_no: str = ""  # nuonuo: issue the red invoice automatically under this orderNo
    history: list[tuple[float, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "form_id": self.form_id,
            "uuid": self.uuid,
            "serial": self.serial,
            "protocol": self.protocol,
            "state": self.state,
            "blue_number": self.blue_number,
            "amount": money(self.amount),
            "tax": money(self.tax),
            "applied_at": self.applied_at,
            "confirmed_at": self.confirmed_at,
            "red_serial": self.red_serial,
        }
