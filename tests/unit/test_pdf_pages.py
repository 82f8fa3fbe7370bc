"""Many lines flow onto further pages with 合计 on the last; a red invoice shows 销项负数 and the
original number; the document is built from a ledger record as the worker stores it."""

from __future__ import annotations

import io
from datetime import datetime
from decimal import Decimal

import pytest
from pypdf import PdfReader

from chalicelib.domain.invoice_document import (
    RED_MARK,
    InvoiceDocument,
    document_from_record,
    rate_text,
)
from chalicelib.domain.models import InvoiceColour, ZeroRateFlag
from chalicelib.pdf import render_invoice_pdf
from chalicelib.pdf.layout import paginate, row_height
from tests.support.invoice_documents import (
    ISSUED_AT,
    NUMBER,
    ORIGINAL_NUMBER,
    sample_document,
    sample_order,
    sample_record_parts,
)


@pytest.fixture(scope="module")
def long_doc() -> InvoiceDocument:
    return sample_document(300)


@pytest.fixture(scope="module")
def long_pages(long_doc: InvoiceDocument) -> list[str]:
    reader = PdfReader(io.BytesIO(render_invoice_pdf(long_doc)))
    return [page.extract_text() for page in reader.pages]


def test_300_lines_paginate_with_every_line_once_in_order(long_doc: InvoiceDocument, long_pages: list[str]) -> None:
    assert len(long_pages) > 10
    printed = [t for page in long_pages for t in page.splitlines() if t.startswith("*") and t != "***"]
    assert printed == [line.name for line in long_doc.lines]


def test_totals_only_on_the_last_page_and_every_page_numbered(long_doc: InvoiceDocument, long_pages: list[str]) -> None:
    count = len(long_pages)
    for number, text in enumerate(long_pages, start=1):
        assert f"第 {number} 页 / 共 {count} 页" in text
        assert long_doc.number in text and long_doc.buyer.name in text and long_doc.seller.name in text
        last = number == count
        assert ("合    计" in text) is last
        assert (long_doc.total_in_capitals in text) is last
        assert ("开票人" in text) is last
    assert long_doc.total == Decimal("25860.00")
    assert "贰万伍仟捌佰陆拾圆整" in long_pages[-1] and "¥25860.00" in long_pages[-1]


def test_pagination_never_leaves_the_totals_alone() -> None:
    for count in range(0, 60):
        pages = paginate([row_height(1)] * count)
        assert [p.number for p in pages] == list(range(1, len(pages) + 1))
        assert [i for p in pages for i in p.rows] == list(range(count))
        assert pages[-1].last and not any(p.last for p in pages[:-1])
        assert count == 0 or pages[-1].rows


# --- red ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def red() -> tuple[InvoiceDocument, str]:
    doc = sample_document(2, red=True)
    reader = PdfReader(io.BytesIO(render_invoice_pdf(doc)))
    return doc, "\n".join(p.extract_text() for p in reader.pages)


def test_a_red_invoice_shows_the_mark_and_the_original_number(red: tuple[InvoiceDocument, str]) -> None:
    doc, text = red
    assert doc.kind is InvoiceColour.RED and doc.original_invoice_number == ORIGINAL_NUMBER
    assert doc.remark.startswith(f"{RED_MARK} 被红冲蓝字数电发票号码：{ORIGINAL_NUMBER}")
    assert "红字发票信息确认单编号：3301000000001234" in doc.remark and doc.remark.endswith("订单号 A1001")
    assert RED_MARK in text and ORIGINAL_NUMBER in text
    assert "-88.50" in text and "¥-200.00" in text
    assert "负贰佰圆整" in text


# --- from the ledger record ------------------------------------------------------------------------
def test_the_document_of_a_ledger_record_is_the_document_of_its_order() -> None:
    order = sample_order(4)
    payload, fields = sample_record_parts(order)
    doc = document_from_record(payload, fields)
    assert doc.number == NUMBER and doc.issued_at == ISSUED_AT
    assert doc.seller.name == order.seller.name and doc.buyer.tax_id == order.buyer.tax_id
    assert [line.name for line in doc.lines] == [f"*{i.short_name}*{i.name}" for i in order.lines]
    assert (doc.total_amount, doc.total_tax, doc.total) == (order.total_amount, order.total_tax, order.total)
    assert doc.issuer == order.issuer and doc.remark == order.remark


@pytest.mark.parametrize(
    "fields",
    [{}, {"invoice_number": "123", "issued_at": "2026-12-01T00:00:00+00:00"}, {"invoice_number": NUMBER}],
)
def test_a_record_not_issued_is_refused(fields: dict[str, str | int]) -> None:
    payload, _ = sample_record_parts(sample_order(1))
    with pytest.raises(ValueError):
        document_from_record(payload, fields)


def test_a_naive_issue_time_is_china_time() -> None:
    doc = sample_document(1)
    naive = type(doc).model_validate({**doc.model_dump(), "issued_at": datetime(2026, 12, 2, 0, 30)})
    assert naive.issued_date == "2026年12月02日"
    assert naive.issued_at.utcoffset() is not None


@pytest.mark.parametrize(
    ("rate", "flag", "shown"),
    [
        ("0.13", None, "13%"),
        ("0.09", None, "9%"),
        ("0.015", None, "1.5%"),
        ("0.03", None, "3%"),
        ("0", ZeroRateFlag.EXEMPT, "免税"),
        ("0", ZeroRateFlag.NOT_TAXABLE, "不征税"),
        ("0", ZeroRateFlag.ZERO_RATE, "0%"),
        ("0.00", None, "0%"),
    ],
)
def test_the_rate_column(rate: str, flag: ZeroRateFlag | None, shown: str) -> None:
    assert rate_text(Decimal(rate), flag) == shown
