"""Issued invoices for the PDF / delivery / page tests and the PDF bench: orders, documents, records.

``sample_order(n)`` is an ``InvoiceOrder`` of ``n`` lines whose totals add up (one 13 % goods line
pattern, with an exempt and a not-taxable line in the mix); ``sample_document`` the document of it
once issued; ``sample_record_parts`` the ``payload`` / ``fields`` of the ledger record it would be.
No tests here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from chalicelib.domain.invoice_document import InvoiceDocument, document_from_order
from chalicelib.domain.models import (
    BuyerType,
    InvoiceBuyer,
    InvoiceColour,
    InvoiceLine,
    InvoiceOrder,
    InvoiceType,
    Party,
    RedReason,
    ZeroRateFlag,
)

SELLER = Party(name="杭州示例科技有限公司", tax_id="91330106MA2B3C4D5E")
BUYER = InvoiceBuyer(name="上海买方贸易有限公司", tax_id="91310000MA1K2L3M4N", type=BuyerType.COMPANY)
NUMBER = "26332000000012345678"
ORIGINAL_NUMBER = "26332000000012340001"
ISSUED_AT = datetime(2026, 12, 1, 17, 30, tzinfo=UTC)  # 2026-12-02 01:30 in China time
ISSUER = "张三"


def _line(index: int, sign: int) -> InvoiceLine:
    kind = index % 10
    if kind == 7:  # an exempt line (免税), e.g. fresh vegetables
        amount = Decimal("12.00") * sign
        return InvoiceLine(
            name=f"有机蔬菜{index}",
            short_name="蔬菜",
            tax_code="1010112000000000000",
            tax_rate=Decimal("0"),
            quantity=Decimal("1.5") * sign,
            unit="千克",
            unit_price=Decimal("8"),
            amount=amount,
            tax=Decimal("0.00"),
            total=amount,
            zero_rate_flag=ZeroRateFlag.EXEMPT,
        )
    if kind == 8:  # not taxable (不征税), e.g. a prepaid card
        amount = Decimal("50.00") * sign
        return InvoiceLine(
            name=f"预付卡充值{index}",
            short_name="预付卡销售",
            tax_code="6010000000000000000",
            tax_rate=Decimal("0"),
            amount=amount,
            tax=Decimal("0.00"),
            total=amount,
            zero_rate_flag=ZeroRateFlag.NOT_TAXABLE,
        )
    return InvoiceLine(
        name=f"不锈钢保温杯{index}号",
        short_name="日用杂品",
        tax_code="1060512990000000000",
        tax_rate=Decimal("0.13"),
        quantity=Decimal(2) * sign,
        unit="个",
        unit_price=Decimal("44.24778761"),
        amount=Decimal("88.50") * sign,
        tax=Decimal("11.50") * sign,
        total=Decimal("100.00") * sign,
        specification="500ml",
    )


def sample_order(
    lines: int = 3,
    *,
    red: bool = False,
    invoice_type: InvoiceType = InvoiceType.NORMAL,
    seller: Party = SELLER,
    buyer: InvoiceBuyer = BUYER,
    remark: str | None = "订单号 A1001",
) -> InvoiceOrder:
    sign = -1 if red else 1
    items = tuple(_line(i, sign) for i in range(lines))
    return InvoiceOrder(
        order_key="shop-1:taobao:A1001" + (":refund:R1" if red else ""),
        store_id="shop-1",
        order_id="A1001",
        colour=InvoiceColour.RED if red else InvoiceColour.BLUE,
        invoice_type=invoice_type,
        seller=seller,
        buyer=buyer,
        lines=items,
        total_amount=sum((i.amount for i in items), Decimal("0.00")),
        total_tax=sum((i.tax for i in items), Decimal("0.00")),
        total=sum((i.total for i in items), Decimal("0.00")),
        issuer=ISSUER,
        remark=remark,
        original_invoice_number=ORIGINAL_NUMBER if red else None,
        original_issued_at=ISSUED_AT if red else None,
        red_reason=RedReason.RETURN if red else None,
        red_form_id="3301000000001234" if red else None,
    )


def sample_document(lines: int = 3, **kwargs: object) -> InvoiceDocument:
    order = sample_order(lines, **kwargs)  # type: ignore[arg-type]
    number = "26332000000012349999" if order.colour is InvoiceColour.RED else NUMBER
    return document_from_order(order, invoice_number=number, issued_at=ISSUED_AT)


def sample_record_parts(order: InvoiceOrder, number: str = NUMBER) -> tuple[dict[str, object], dict[str, str | int]]:
    """``(payload, fields)`` as the ledger holds an issued order (ingest's payload, settle's fields)."""
    payload: dict[str, object] = {"event": {}, "order": order.model_dump(mode="json")}
    fields: dict[str, str | int] = {
        "serial": "S1",
        "invoice_number": number,
        "issued_at": ISSUED_AT.isoformat(),
        "sends": 1,
    }
    return payload, fields
