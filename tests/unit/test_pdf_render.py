"""The project's own invoice PDF: its text (pypdf), its fonts, its metadata, its size, its missing glyphs.

Each document is rendered once per module; every assertion reads those bytes.
"""

from __future__ import annotations

import io
import re
from decimal import Decimal
from typing import Any

import pytest
from pypdf import PdfReader

from chalicelib.domain.invoice_document import InvoiceDocument, verification_text
from chalicelib.domain.models import InvoiceBuyer, InvoiceType, Party
from chalicelib.pdf import missing_characters, render_invoice_pdf
from chalicelib.pdf.fonts import MISSING_GLYPH
from tests.support.invoice_documents import sample_document


@pytest.fixture(scope="module")
def doc() -> InvoiceDocument:
    return sample_document(9)  # goods lines, an exempt and a not-taxable line: one page


@pytest.fixture(scope="module")
def pdf(doc: InvoiceDocument) -> bytes:
    return render_invoice_pdf(doc)


@pytest.fixture(scope="module")
def reader(pdf: bytes) -> PdfReader:
    return PdfReader(io.BytesIO(pdf))


@pytest.fixture(scope="module")
def text(reader: PdfReader) -> str:
    return "\n".join(page.extract_text() for page in reader.pages)


def test_it_is_one_page_of_the_sdt_format(reader: PdfReader) -> None:
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (round(float(box.width) / 72 * 25.4), round(float(box.height) / 72 * 25.4)) == (241, 140)


def test_the_text_holds_the_header_both_parties_and_the_totals(doc: InvoiceDocument, text: str) -> None:
    assert "电子发票（普通发票）" in text
    assert doc.number in text and "发票号码" in text
    assert "2026年12月02日" in text  # 开票日期 in China time (issued 17:30 UTC the day before)
    for party in (doc.seller, doc.buyer):
        assert party.name in text
        assert party.tax_id in text
    assert "统一社会信用代码/纳税人识别号" in text
    assert doc.total == Decimal("762.00")
    assert doc.total_in_capitals == "柒佰陆拾贰圆整" and doc.total_in_capitals in text  # 价税合计（大写）
    assert "¥762.00" in text  # （小写）
    assert f"¥{doc.total_amount}" in text and f"¥{doc.total_tax}" in text  # the 合计 row
    assert "合" in text and "计" in text
    assert doc.remark in text
    assert "开票人" in text and doc.issuer in text
    assert "第 1 页 / 共 1 页" in text


def test_each_line_is_printed_with_every_column(doc: InvoiceDocument, text: str) -> None:
    lines = text.splitlines()
    for line in doc.lines:
        assert line.name.startswith("*") and line.name in lines  # *简称*名称
        for cell in line.cells()[1:]:
            if cell:
                assert cell in lines, (line.name, cell)
    assert "免税" in lines and "不征税" in lines and "***" in lines
    assert "13%" in lines
    for heading in ("项目名称", "规格型号", "单位", "数量", "单价", "金额", "税率/征收率", "税额"):
        assert heading in lines


def _fonts(reader: PdfReader) -> list[Any]:
    fonts = []
    for page in reader.pages:
        resources: Any = page["/Resources"]
        for font in resources["/Font"].values():
            fonts.append(font.get_object())
        for form in resources.get("/XObject", {}).values():
            fonts += [f.get_object() for f in form.get_object().get("/Resources", {}).get("/Font", {}).values()]
    return fonts


def test_only_an_embedded_truetype_subset_font_is_used(reader: PdfReader) -> None:
    fonts = _fonts(reader)
    assert fonts
    for font in fonts:
        assert font["/Subtype"] == "/TrueType", font
        assert re.fullmatch(r"/[A-Z]{6}\+WenQuanYiMicroHei", str(font["/BaseFont"])), font["/BaseFont"]
        descriptor = font["/FontDescriptor"].get_object()
        embedded = descriptor["/FontFile2"].get_object()
        assert 0 < len(embedded.get_data()) < 200_000  # a subset, not the 3 MB font
        assert "/ToUnicode" in font  # so the text can be extracted and searched


def test_metadata_names_the_invoice_and_the_seller(doc: InvoiceDocument, reader: PdfReader) -> None:
    meta = reader.metadata
    assert meta is not None
    assert meta.title == f"电子发票（普通发票） {doc.number}"
    assert meta.author == doc.seller.name
    assert str(meta["/Keywords"]) == verification_text(doc)


def test_rendering_is_deterministic(doc: InvoiceDocument, pdf: bytes) -> None:
    assert render_invoice_pdf(doc) == pdf


def test_a_one_page_pdf_stays_under_60_kb(pdf: bytes) -> None:
    assert pdf.startswith(b"%PDF-")
    assert len(pdf) <= 60 * 1024


# --- the special invoice, and characters the font lacks ------------------------------------------
RARE = "𠮷野家🎁"  # an Extension-B hanzi and an emoji: outside the embedded font (GBK)


@pytest.fixture(scope="module")
def special() -> tuple[InvoiceDocument, str]:
    doc = sample_document(
        2,
        invoice_type=InvoiceType.SPECIAL,
        buyer=InvoiceBuyer(name=f"{RARE}餐饮管理有限公司", tax_id="91310000MA1K2L3M4N"),
        seller=Party(name="杭州示例科技有限公司", tax_id="91330106MA2B3C4D5E"),
        remark="第一行\n第二行",
    )
    reader = PdfReader(io.BytesIO(render_invoice_pdf(doc)))
    return doc, "\n".join(p.extract_text() for p in reader.pages)


def test_the_special_invoice_title(special: tuple[InvoiceDocument, str]) -> None:
    doc, text = special
    assert "电子发票（增值税专用发票）" in text
    assert verification_text(doc).startswith("01,31,,")


def test_characters_the_font_lacks_are_marked_not_dropped(special: tuple[InvoiceDocument, str]) -> None:
    doc, text = special
    assert missing_characters(doc) == frozenset({"𠮷", "🎁"})
    assert f"{MISSING_GLYPH}野家{MISSING_GLYPH}餐饮管理有限公司" in text
    assert "𠮷" not in text and "🎁" not in text


def test_a_remark_keeps_its_line_breaks(special: tuple[InvoiceDocument, str]) -> None:
    _, text = special
    assert "第一行\n第二行" in text


def test_a_long_name_wraps_onto_at_most_three_lines() -> None:
    doc = sample_document(1)
    long_line = doc.lines[0].model_copy(update={"name": "*日用杂品*" + "超长商品名称" * 30})
    doc = doc.model_copy(update={"lines": (long_line,)})
    lines = PdfReader(io.BytesIO(render_invoice_pdf(doc))).pages[0].extract_text().splitlines()
    name_lines = [t for t in lines if "超长商品名称" in t or t.startswith("*日用杂品*")]
    assert 2 <= len(name_lines) <= 3
    assert name_lines[0].startswith("*日用杂品*超长") and name_lines[-1].endswith("…")
