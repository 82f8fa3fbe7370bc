"""The invoice's QR code: its content (the inferred 数电票 format), the PDF's vector QR decoded with
zxing-cpp after rasterising its rectangles, a segno PNG of the same text, and the page's inline SVG."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any, cast

import pytest
import segno
import zxingcpp
from PIL import Image, ImageDraw
from pypdf import PdfReader

from chalicelib.domain.invoice_document import InvoiceDocument, verification_text
from chalicelib.pdf import qr_svg, render_invoice_pdf
from chalicelib.pdf.qr import QUIET_ZONE, runs
from tests.support.invoice_documents import sample_document

RECT = re.compile(rb"(-?[\d.]+) (-?[\d.]+) (-?[\d.]+) (-?[\d.]+) re")
PIXELS_PER_POINT = 6


@pytest.fixture(scope="module")
def doc() -> InvoiceDocument:
    return sample_document(2)


@pytest.fixture(scope="module")
def reader(doc: InvoiceDocument) -> PdfReader:
    return PdfReader(io.BytesIO(render_invoice_pdf(doc)))


def _decode(image: Image.Image) -> list[str]:
    return [
        b.text for b in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode))
    ]


def test_the_content_is_the_inferred_sdt_format(doc: InvoiceDocument) -> None:
    assert verification_text(doc) == "01,32,,26332000000012345678,200.00,20261202,,"


def test_the_date_is_china_time_and_a_red_amount_is_negative() -> None:
    late = sample_document(1).model_copy(update={"issued_at": datetime(2026, 12, 31, 16, 0, tzinfo=UTC)})
    assert verification_text(late).split(",")[5] == "20270101"
    red = sample_document(1, red=True)
    assert verification_text(red).split(",")[4] == "-100.00"


def test_a_segno_png_of_the_text_decodes_back(doc: InvoiceDocument) -> None:
    buffer = io.BytesIO()
    segno.make_qr(verification_text(doc), error="m").save(buffer, kind="png", scale=6)
    assert _decode(Image.open(io.BytesIO(buffer.getvalue()))) == [verification_text(doc)]


def test_the_pdf_qr_itself_decodes_to_the_verification_text(doc: InvoiceDocument, reader: PdfReader) -> None:
    """Rasterise the PDF's QR form XObject (its ``re`` operators) and decode the picture."""
    forms: Any = cast(Any, reader.pages[0]["/Resources"])["/XObject"]
    (form,) = [f.get_object() for name, f in forms.items() if name.endswith("InvoiceQR")]
    x0, _, x1, y1 = (float(v) for v in form["/BBox"])
    rects = [tuple(float(v) for v in m) for m in RECT.findall(form.get_data())]
    assert rects
    margin = 12  # points of white around the symbol: the quiet zone the page gives it
    side = round((x1 - x0 + 2 * margin) * PIXELS_PER_POINT)
    image = Image.new("L", (side, side), 255)
    draw = ImageDraw.Draw(image)
    for x, y, w, h in rects:  # PDF y grows upwards; image y downwards
        left, top = (x - x0 + margin) * PIXELS_PER_POINT, (y1 - (y + h) + margin) * PIXELS_PER_POINT
        draw.rectangle((left, top, left + w * PIXELS_PER_POINT - 1, top + h * PIXELS_PER_POINT - 1), fill=0)
    assert _decode(image) == [verification_text(doc)]
    assert reader.metadata is not None and str(reader.metadata["/Keywords"]) == verification_text(doc)


def test_every_page_carries_the_qr(reader: PdfReader) -> None:
    big = PdfReader(io.BytesIO(render_invoice_pdf(sample_document(40))))
    assert len(big.pages) > 1
    for page in big.pages:
        assert b"InvoiceQR Do" in page.get_contents().get_data()  # type: ignore[union-attr]


def test_the_inline_svg_is_markup_without_a_prolog_and_decodes(doc: InvoiceDocument) -> None:
    text = verification_text(doc)
    svg = qr_svg(text)
    assert svg.startswith("<svg ") and "<?xml" not in svg
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    size, _ = runs(text)
    assert root.get("viewBox") == f"0 0 {size + 2 * QUIET_ZONE} {size + 2 * QUIET_ZONE}"
    # Rasterise the SVG's own path (M x y h n v1 h-n z per run) and decode it.
    scale = 8
    full = (size + 2 * QUIET_ZONE) * scale
    image = Image.new("L", (full, full), 255)
    draw = ImageDraw.Draw(image)
    path = root.find("{http://www.w3.org/2000/svg}path")
    assert path is not None
    for x, y, n in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\d+z", path.get("d", "")):
        left, top = int(x) * scale, int(y) * scale
        draw.rectangle((left, top, left + int(n) * scale - 1, top + scale - 1), fill=0)
    assert _decode(image) == [text]
