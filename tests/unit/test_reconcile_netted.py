"""Reconciliation's ``red_exceeds_blue`` with a refund netted before issue (found by the 2,000-order
chaos run): that refund reduced the blue itself, so it must not count against the reduced blue."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from chalicelib.domain.order_state import OrderStatus
from chalicelib.reports.facts import BLUE, RED, Fact
from chalicelib.reports.month import Month
from chalicelib.reports.reconcile import RED_EXCEEDS_BLUE, reconcile

AT = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)
BLUE_KEY = "demo-shanghai:standard:CH7-00158"


def fact(key: str, kind: str, status: OrderStatus, *, total: str, paid: str, refunded: str = "0") -> Fact:
    return Fact(
        order_key=key, store_id="demo-shanghai", kind=kind, status=status, order_id="CH7-00158",
        created_at=AT, updated_at=AT, issued_at=AT if status in (OrderStatus.ISSUED, OrderStatus.RED_ISSUED) else None,
        serial="", invoice_number="", original_number="", blue_key=BLUE_KEY if kind == RED else "",
        buyer_name="", buyer_tax_id="", amount=Decimal(total), tax=Decimal("0"), total=Decimal(total), rates=(),
        paid=Decimal(paid), refunded_total=Decimal(refunded), platform_amount=None, platform_tax=None,
        failure_code="", failure_reason="", last_error="", violations=(), fixed_by="", due_at=None,
    )  # fmt: skip


def exceeded(red_total: str) -> list[str]:
    """Paid 266.41; a refund of 95.91 before issue (the blue issued for 170.50), one of ``red_total`` after."""
    blue = fact(
        BLUE_KEY, BLUE, OrderStatus.ISSUED, total="170.50", paid="266.41", refunded=str(95.91 + float(red_total))
    )
    netted = fact(f"{BLUE_KEY}:refund:1", RED, OrderStatus.REFUND_NETTED, total="0", paid="95.91")
    red = fact(f"{BLUE_KEY}:refund:2", RED, OrderStatus.RED_ISSUED, total=f"-{red_total}", paid=red_total)
    found = reconcile(Month.parse("2026-12"), [blue, netted, red], blues={BLUE_KEY: blue}, platform={}, now=AT)
    return [d.detail for d in found if d.kind == RED_EXCEEDS_BLUE]


def test_a_refund_netted_before_issue_does_not_count_against_the_reduced_blue() -> None:
    assert exceeded("85.25") == []


def test_refunds_after_issue_above_the_reduced_blue_are_still_named() -> None:
    assert exceeded("170.51") != []
