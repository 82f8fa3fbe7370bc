"""One ledger record as the reports see it: a :class:`Fact` (what was sold, issued or reversed).

Read defensively: a record carries what its path through the service wrote (see the field lists of
``chalicelib/services/settle.py``, ``red_tax.py``, ``rejections.py``), and older records or records of
another path may lack a field; a missing amount is zero, a missing text empty, never an error.

Amounts of a blue invoice: the validated order in the record's payload (``payload.order``: the
amount excl. tax, the tax, the total, the rates per line). Of a red invoice: the reversal the red
flow issues (``chalicelib.domain.red_allocation.red_order`` over the blue's refund book), negative;
when the blue or its book is unreadable, the record's ``red_total`` split at the blue's ratio.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from chalicelib.domain.models import InvoiceOrder, RedReason
from chalicelib.domain.order_keys import OrderKey, parse_order_key, serial_for
from chalicelib.domain.order_state import OrderStatus
from chalicelib.domain.red_allocation import RefundBook, red_order
from chalicelib.reports.month import parse_time
from chalicelib.services.ports import OrderRecord

ZERO = Decimal("0.00")
CENT = Decimal("0.01")

BLUE, RED = "blue", "red"


def money(value: object) -> Decimal:
    """A stored amount as Decimal, to the cent (unreadable or absent: 0.00)."""
    if value is None or value == "":
        return ZERO
    try:
        return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError):
        return ZERO


def plain(value: Decimal) -> str:
    """An amount as a plain decimal with two places (``-12.30``, never ``1E+2``)."""
    return f"{value.quantize(CENT, rounding=ROUND_HALF_UP):f}"


def rate_text(rate: Decimal) -> str:
    """A rate fraction as a percentage text (0.13 → ``13%``, 0.015 → ``1.5%``)."""
    pct = (rate * 100).normalize()
    return f"{pct:f}%"


@dataclass(frozen=True)
class Fact:
    order_key: str
    store_id: str
    kind: str  # blue | red
    status: OrderStatus
    order_id: str
    created_at: datetime | None
    updated_at: datetime | None
    issued_at: datetime | None
    serial: str
    invoice_number: str
    original_number: str  # red: the blue invoice it reverses
    blue_key: str  # red: the blue record's key
    buyer_name: str
    buyer_tax_id: str
    amount: Decimal  # excl. tax; negative for a red invoice
    tax: Decimal
    total: Decimal
    rates: tuple[Decimal, ...]
    paid: Decimal  # what the buyer paid (blue) or the refund's amount (red), positive
    refunded_total: Decimal  # blue: what its refunds took
    platform_amount: Decimal | None  # what the platform reported when it issued (blue)
    platform_tax: Decimal | None
    failure_code: str
    failure_reason: str
    last_error: str
    violations: tuple[str, ...]  # codes of a rejected order
    fixed_by: str
    due_at: datetime | None
    fields: Mapping[str, str | int] = field(default_factory=dict)

    @property
    def is_red(self) -> bool:
        return self.kind == RED

    @property
    def voided(self) -> bool:
        """A blue the platform reports voided (the worker records it failed with that reason)."""
        text = f"{self.failure_code} {self.failure_reason}".lower()
        return self.status is OrderStatus.FAILED and ("voided" in text or "invoice_voided" in text)


def _order(payload: Mapping[str, Any], name: str = "order") -> InvoiceOrder | None:
    raw = payload.get(name)
    if not isinstance(raw, dict):
        return None
    try:
        return InvoiceOrder.model_validate(raw)
    except ValueError:
        return None


def _event(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    event = payload.get("event")
    return event if isinstance(event, dict) else {}


def _codes(record: OrderRecord) -> tuple[str, ...]:
    return tuple(str(v.get("code", "")) for v in record.violations or () if isinstance(v, dict))


def _text(record: OrderRecord, name: str) -> str:
    return record.text(name) or ""


def _red_amounts(
    record: OrderRecord, blue: OrderRecord | None
) -> tuple[Decimal, Decimal, Decimal, tuple[Decimal, ...]]:
    """(amount, tax, total, rates) of a refund's red invoice, negative."""
    order = _order(blue.payload) if blue is not None else None
    if order is not None and blue is not None:
        book = RefundBook.of(blue.fields)
        shares = book.entries.get(record.order_key)
        if shares:
            try:
                red = red_order(order, record.order_key, shares, reason=RedReason.RETURN)
            except ValueError:
                red = None
            if red is not None:
                return money(red.total_amount), money(red.total_tax), money(red.total), _rates(red)
    total = -abs(money(record.fields.get("red_total")))
    if order is not None and order.total:
        tax = (total * order.total_tax / order.total).quantize(CENT, rounding=ROUND_HALF_UP)
        return total - tax, tax, total, _rates(order)
    return total, ZERO, total, ()


def _rates(order: InvoiceOrder) -> tuple[Decimal, ...]:
    return tuple(sorted({line.tax_rate for line in order.lines if not line.is_discount}, reverse=True))


def _raw_rates(order: Mapping[str, Any]) -> tuple[Decimal, ...]:
    raw = order.get("lines")
    lines: list[Any] = raw if isinstance(raw, list) else []
    found: set[Decimal] = set()
    for line in lines:
        if isinstance(line, dict) and not line.get("is_discount") and line.get("tax_rate") not in (None, ""):
            try:
                found.add(Decimal(str(line["tax_rate"])))
            except InvalidOperation:
                continue
    return tuple(sorted(found, reverse=True))


def _raw_buyer(payload: Mapping[str, Any] | None) -> tuple[str, str]:
    """(name, tax id) of the buyer of a payload's order, else of its event (a rejected order)."""
    payload = payload or {}
    order = payload.get("order")
    buyer = order.get("buyer") if isinstance(order, dict) else None
    if isinstance(buyer, dict):
        return str(buyer.get("name") or ""), str(buyer.get("tax_id") or "")
    event_buyer = _event(payload).get("buyer")
    if isinstance(event_buyer, dict):
        return str(event_buyer.get("title") or ""), str(event_buyer.get("tax_id") or "")
    return "", ""


def fact_of(record: OrderRecord, blue: OrderRecord | None = None, *, key: OrderKey | None = None) -> Fact:
    """The fact of ``record``; ``blue``: for a refund, its blue record (when known). A blue order is
    read from the payload as stored (it was validated when written): no model is built per record."""
    key = key or parse_order_key(record.order_key)
    event = _event(record.payload)
    f = record.fields
    red = key.is_refund or record.kind == "refunded"
    status = record.status
    rates: tuple[Decimal, ...]
    if red:
        blue_key = _text(record, "blue_key") or str(key.blue)
        if status is OrderStatus.RED_ISSUED or "red_total" in f:
            amount, tax, total, rates = _red_amounts(record, blue)
        else:
            amount, tax, total, rates = ZERO, ZERO, ZERO, ()
        paid = abs(money(event.get("refund_amount")))
        original = (blue.text("invoice_number") if blue is not None else None) or ""
        serial = _text(record, "serial")
        refunded = ZERO
        buyer_name, buyer_tax_id = _raw_buyer(blue.payload if blue is not None else None)
    else:
        blue_key, original = "", ""
        raw_order = record.payload.get("order")
        if isinstance(raw_order, dict):
            amount, tax, total = (money(raw_order.get(k)) for k in ("total_amount", "total_tax", "total"))
            rates = _raw_rates(raw_order)
        else:
            amount, tax, total, rates = ZERO, ZERO, money(event.get("amount")), ()
        paid = money(event.get("amount"))
        serial = _text(record, "serial") or serial_for(record.order_key)
        refunded = money(f.get("refunded_total"))
        buyer_name, buyer_tax_id = _raw_buyer(record.payload)
    return Fact(
        order_key=record.order_key,
        store_id=record.store_id,
        kind=RED if red else BLUE,
        status=status,
        order_id=key.order_id,
        created_at=parse_time(record.created_at),
        updated_at=parse_time(_text(record, "updated_at")),
        issued_at=parse_time(_text(record, "issued_at")),
        serial=serial,
        invoice_number=_text(record, "invoice_number"),
        original_number=original,
        blue_key=blue_key,
        buyer_name=buyer_name,
        buyer_tax_id=buyer_tax_id,
        amount=amount,
        tax=tax,
        total=total,
        rates=rates,
        paid=paid,
        refunded_total=refunded,
        platform_amount=money(f["total_amount"]) if f.get("total_amount") not in (None, "") else None,
        platform_tax=money(f["total_tax"]) if f.get("total_tax") not in (None, "") else None,
        failure_code=_text(record, "failure_code"),
        failure_reason=_text(record, "failure_reason"),
        last_error=_text(record, "last_error"),
        violations=_codes(record),
        fixed_by=_text(record, "fixed_by"),
        due_at=parse_time(_text(record, "due_at")),
        fields=dict(f),
    )


def red_invoices_of(blue: Fact) -> dict[str, str]:
    """A blue's ``red_invoices`` field (refund key → red number), when the red flow keeps one."""
    raw = blue.fields.get("red_invoices")
    try:
        found = json.loads(str(raw)) if raw else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}
