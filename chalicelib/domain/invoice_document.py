"""The issued invoice as printed (版式): what the PDF, the customer's page and the e-mail show.

Pure: built from the queued :class:`~chalicelib.domain.models.InvoiceOrder` plus what the platform
returned on issuing (the 20-digit number and the time), never from the tax platform's own files.

- :func:`document_from_order` — from an ``InvoiceOrder`` and the issued number / time;
- :func:`document_from_record` — from an ``OrderRecord``'s ``payload`` (``payload["order"]`` is the
  order as ``model_dump(mode="json")`` wrote it at intake) and ``fields`` (``invoice_number`` and
  ``issued_at`` as the settle step wrote them when the invoice was issued);
- :func:`verification_text` — the QR code's content (the inferred 数电票 format, ``docs/delivery.md``).

Every display rule (the rate column, number formats, the date, the red-invoice remark) lives here so
the PDF and the HTML page print the same thing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from pydantic import Field, field_validator

from chalicelib.domain.capitals import amount_in_capitals
from chalicelib.domain.china_time import CHINA_TZ
from chalicelib.domain.models import (
    Dec,
    Frozen,
    InvoiceColour,
    InvoiceLine,
    InvoiceOrder,
    InvoiceType,
    ZeroRateFlag,
)

#: 开票日期 is printed in China time (UTC+8, no daylight saving); a naive time is taken as China time.
INVOICE_NUMBER_RE = re.compile(r"^\d{20}$")
TITLES = {
    InvoiceType.NORMAL: "电子发票（普通发票）",
    InvoiceType.SPECIAL: "电子发票（增值税专用发票）",
}
#: The QR code's invoice-type field: 31 = 数电票（增值税专用发票）, 32 = 数电票（普通发票） (inferred).
QR_TYPE_CODES = {InvoiceType.SPECIAL: "31", InvoiceType.NORMAL: "32"}
QR_VERSION = "01"
#: What a red invoice's 备注 starts with (the remark the after-sale flow relies on).
RED_MARK = "销项负数"
RATE_LABELS = {ZeroRateFlag.EXEMPT: "免税", ZeroRateFlag.NOT_TAXABLE: "不征税"}
#: 税额 printed on exempt / not-taxable lines (as the 数电票 layout does).
NO_TAX_TEXT = "***"


class DocumentParty(Frozen):
    name: str
    tax_id: str = ""  # 统一社会信用代码/纳税人识别号 ('' for an individual without one)


class DocumentLine(Frozen):
    """One printed line; ``name`` is already ``*简称*名称``."""

    name: str
    specification: str = ""  # 规格型号
    unit: str = ""  # 单位
    quantity: Dec | None = None  # 数量
    unit_price: Dec | None = None  # 单价 (excl. tax)
    amount: Dec  # 金额 (excl. tax)
    tax_rate: str  # 税率/征收率: "13%", "1.5%", "0%", "免税", "不征税"
    tax: Dec  # 税额

    @property
    def tax_text(self) -> str:
        return NO_TAX_TEXT if self.tax_rate in RATE_LABELS.values() else money_text(self.tax)

    def cells(self) -> tuple[str, str, str, str, str, str, str, str]:
        """The eight columns as printed: 项目名称 规格型号 单位 数量 单价 金额 税率/征收率 税额."""
        return (
            self.name,
            self.specification,
            self.unit,
            number_text(self.quantity),
            number_text(self.unit_price),
            money_text(self.amount),
            self.tax_rate,
            self.tax_text,
        )


class InvoiceDocument(Frozen):
    number: str = Field(pattern=r"^\d{20}$")  # 发票号码
    issued_at: datetime  # 开票日期 (aware; printed in China time)
    kind: InvoiceColour  # blue / red
    invoice_type: InvoiceType
    seller: DocumentParty
    buyer: DocumentParty
    lines: tuple[DocumentLine, ...]
    total_amount: Dec  # 合计 金额
    total_tax: Dec  # 合计 税额
    total: Dec  # 价税合计
    remark: str = ""  # 备注, as printed (a red invoice's starts with RED_MARK and the original number)
    issuer: str  # 开票人
    original_invoice_number: str | None = None  # red: the blue invoice it reverses

    @field_validator("issued_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return v if v.tzinfo is not None else v.replace(tzinfo=CHINA_TZ)

    @property
    def title(self) -> str:
        return TITLES[self.invoice_type]

    @property
    def is_red(self) -> bool:
        return self.kind is InvoiceColour.RED

    @property
    def total_in_capitals(self) -> str:
        return amount_in_capitals(self.total)

    @property
    def total_in_figures(self) -> str:
        """（小写）: ``¥108.00``, a red invoice's ``¥-108.00``."""
        return f"¥{money_text(self.total)}"

    @property
    def issued_date(self) -> str:
        """开票日期 as printed: ``2026年12月02日``."""
        return f"{self.issued_at.astimezone(CHINA_TZ):%Y年%m月%d日}"


# --- display rules ------------------------------------------------------------------------------
def money_text(value: Decimal) -> str:
    """Two decimals, no grouping (the layout's figures): ``1234.5`` → ``1234.50``."""
    return f"{value.quantize(Decimal('0.01')):f}"


def number_text(value: Decimal | None) -> str:
    """Quantity / unit price: as given, trailing zeros dropped, never exponent notation."""
    if value is None:
        return ""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def rate_text(rate: Decimal, flag: ZeroRateFlag | None) -> str:
    """税率/征收率: ``0.13`` → ``13%``, ``0.015`` → ``1.5%``; a 0 % line shows its flag (免税 / 不征税)."""
    if rate == 0 and flag is not None and flag in RATE_LABELS:
        return RATE_LABELS[flag]
    return f"{number_text(rate * 100) or '0'}%"


def red_remark(original_number: str | None, form_id: str | None, remark: str | None) -> str:
    """A red invoice's 备注: ``销项负数 被红冲蓝字数电发票号码：… 红字发票信息确认单编号：…`` then the order's."""
    parts = [RED_MARK]
    if original_number:
        parts.append(f"被红冲蓝字数电发票号码：{original_number}")
    if form_id:
        parts.append(f"红字发票信息确认单编号：{form_id}")
    if remark:
        parts.append(remark)
    return " ".join(parts)


def verification_text(doc: InvoiceDocument) -> str:
    """The QR code's content, as printed 数电票 carry it (inferred; ``docs/delivery.md``)::

        01,32,,<20-digit number>,<价税合计>,<YYYYMMDD>,,

    version ``01``; type ``32`` 普通发票 / ``31`` 专用发票; an empty 发票代码 (数电票 have none); the
    number; 价税合计 with two decimals (negative on a red invoice); 开票日期 in China time; an empty
    校验码; and an empty last field where issued invoices carry a 4-hex check whose algorithm is
    unpublished — left empty rather than invented.
    """
    return ",".join(
        (
            QR_VERSION,
            QR_TYPE_CODES[doc.invoice_type],
            "",
            doc.number,
            money_text(doc.total),
            f"{doc.issued_at.astimezone(CHINA_TZ):%Y%m%d}",
            "",
            "",
        )
    )


# --- building -----------------------------------------------------------------------------------
def _line(line: InvoiceLine) -> DocumentLine:
    return DocumentLine(
        name=line.display_name,
        specification=line.specification or "",
        unit=line.unit or "",
        quantity=line.quantity,
        unit_price=line.unit_price,
        amount=line.amount,
        tax_rate=rate_text(line.tax_rate, line.zero_rate_flag),
        tax=line.tax,
    )


def document_from_order(order: InvoiceOrder, *, invoice_number: str, issued_at: datetime) -> InvoiceDocument:
    """The printed invoice of an issued order (``invoice_number``: the platform's 20 digits)."""
    red = order.colour is InvoiceColour.RED
    remark = red_remark(order.original_invoice_number, order.red_form_id, order.remark) if red else order.remark
    return InvoiceDocument(
        number=invoice_number,
        issued_at=issued_at,
        kind=order.colour,
        invoice_type=order.invoice_type,
        seller=DocumentParty(name=order.seller.name, tax_id=order.seller.tax_id or ""),
        buyer=DocumentParty(name=order.buyer.name, tax_id=order.buyer.tax_id or ""),
        lines=tuple(_line(line) for line in order.lines),
        total_amount=order.total_amount,
        total_tax=order.total_tax,
        total=order.total,
        remark=remark or "",
        issuer=order.issuer,
        original_invoice_number=order.original_invoice_number if red else None,
    )


#: A refund record's field holding the red invoice order as issued (JSON, the buyer's e-mail address and
#: mobile number left out): a refund record's payload holds only its event (``red_tax`` writes it).
RED_ORDER_FIELD = "red_order"


def red_order_text(order: InvoiceOrder) -> str:
    """The :data:`RED_ORDER_FIELD` text of the red order ``order`` (no contact details: records are masked)."""
    bare = order.model_copy(update={"buyer": order.buyer.model_copy(update={"email": None, "mobile": None})})
    return json.dumps(bare.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"))


def record_order(payload: Mapping[str, object], fields: Mapping[str, str | int]) -> Mapping[str, object] | None:
    """The invoice order of a record: the blue's ``payload["order"]``, a red's :data:`RED_ORDER_FIELD`."""
    order = payload.get("order")
    if isinstance(order, Mapping):
        return order
    raw = fields.get(RED_ORDER_FIELD)
    if isinstance(raw, str) and raw:
        loaded = json.loads(raw)
        return loaded if isinstance(loaded, Mapping) else None
    return None


def document_from_record(payload: Mapping[str, object], fields: Mapping[str, str | int]) -> InvoiceDocument:
    """The printed invoice of a ledger record (``OrderRecord.payload`` / ``.fields``) once issued — a
    blue order record, or a refund record whose red invoice is issued (:data:`RED_ORDER_FIELD`).

    Raises ``ValueError`` when the record holds no order or is not issued (no ``invoice_number`` /
    ``issued_at``) — a caller asks only for issued records.
    """
    order = record_order(payload, fields)
    if order is None:
        raise ValueError("the record's payload holds no invoice order")
    number, issued = fields.get("invoice_number"), fields.get("issued_at")
    if not isinstance(number, str) or not INVOICE_NUMBER_RE.match(number):
        raise ValueError("the record holds no 20-digit invoice_number (not issued?)")
    if not isinstance(issued, str):
        raise ValueError("the record holds no issued_at (not issued?)")
    return document_from_order(
        InvoiceOrder.model_validate(order), invoice_number=number, issued_at=datetime.fromisoformat(issued)
    )
