"""``render_invoice_pdf(doc) -> bytes``: the project's own PDF of an issued 数电票 (reportlab canvas).

Deterministic: the same document gives the same bytes (reportlab's ``invariant`` mode fixes the
dates and the file id). One embedded font (``chalicelib.pdf.fonts``), subset per document. The QR code
is drawn as vector rectangles inside a form XObject named ``InvoiceQR``; its content is also the
document's ``/Keywords`` so a reader (or a test) can compare the two.
"""

from __future__ import annotations

import io
import threading

from reportlab import rl_config
from reportlab.lib.colors import Color, black
from reportlab.pdfgen.canvas import Canvas

from chalicelib.domain.invoice_document import InvoiceDocument, money_text, verification_text
from chalicelib.pdf import layout as L
from chalicelib.pdf import qr
from chalicelib.pdf.fonts import font_name, missing, printable, width
from chalicelib.pdf.layout import mm

#: The 数电票 prints its frame, labels and title in a brownish red; values in black.
FRAME = Color(0.61, 0.27, 0.16)
QR_FORM = "InvoiceQR"
QR_SIZE = 20 * mm
CREATOR = "einvoice (chalicelib.pdf)"


def missing_characters(doc: InvoiceDocument) -> frozenset[str]:
    """Characters of the document the font cannot draw (printed as 〓): callers may log them."""
    texts = [doc.seller.name, doc.buyer.name, doc.remark, doc.issuer]
    texts += [cell for line in doc.lines for cell in line.cells()]
    return missing("".join(texts))


def render_invoice_pdf(doc: InvoiceDocument) -> bytes:
    """The invoice as a PDF: every page with the header and both parties, the lines flowing over
    pages, 合计 / 价税合计 / 备注 / 开票人 on the last page, 第 n 页 / 共 m 页 on each."""
    with _render_lock:
        saved, rl_config.useA85 = rl_config.useA85, 0  # binary Flate streams: smaller and faster than ASCII85
        try:
            return _render(doc)
        finally:
            rl_config.useA85 = saved


_render_lock = threading.Lock()


def _render(doc: InvoiceDocument) -> bytes:
    buffer = io.BytesIO()
    canvas = Canvas(
        buffer,
        pagesize=(L.PAGE_WIDTH, L.PAGE_HEIGHT),
        invariant=1,
        pageCompression=1,
        initialFontName=font_name(),  # else reportlab adds Helvetica (not embedded) to every page
        initialFontSize=L.TEXT_SIZE,
    )
    canvas.setTitle(f"{doc.title} {doc.number}")
    canvas.setAuthor(printable(doc.seller.name))
    canvas.setSubject(f"价税合计 {doc.total_in_figures}")
    canvas.setCreator(CREATOR)
    canvas.setKeywords(verification_text(doc))
    _Renderer(canvas, doc).draw()
    canvas.save()
    return buffer.getvalue()


class _Renderer:
    def __init__(self, canvas: Canvas, doc: InvoiceDocument) -> None:
        self.c = canvas
        self.doc = doc
        self.font = font_name()
        self.edges = L.column_edges()
        name_width = L.COLUMNS[0][1] - 2 * L.CELL_PAD
        self.rows = [
            (
                L.wrap(printable(line.name), name_width, L.TEXT_SIZE, L.MAX_NAME_LINES),
                [printable(cell) for cell in line.cells()[1:]],
            )
            for line in doc.lines
        ]
        self.pages = L.paginate([L.row_height(len(name)) for name, _ in self.rows])

    # --- the whole document -----------------------------------------------------------------------
    def draw(self) -> None:
        self._define_qr()
        for page in self.pages:
            self._header()
            self._parties()
            bottom = self._table(page)
            if page.last:
                self._footer(bottom)
            else:
                self._frame(L.BOX_BOTTOM)
            self._page_number(page.number)
            self.c.showPage()

    # --- pieces -------------------------------------------------------------------------------------
    def _text(self, x: float, y: float, text: str, size: float = L.TEXT_SIZE, colour: Color = black) -> None:
        self.c.setFillColor(colour)
        self.c.setFont(self.font, size)
        self.c.drawString(x, y, text)

    def _define_qr(self) -> None:
        """The QR as one filled path of integer module rectangles, scaled by the form's matrix."""
        size, runs = qr.runs(verification_text(self.doc))
        module = QR_SIZE / size
        c = self.c
        c.beginForm(QR_FORM, lowerx=0, lowery=0, upperx=QR_SIZE, uppery=QR_SIZE)
        rects = " ".join(f"{column} {size - row - 1} {length} 1 re" for row, column, length in runs)
        # Literal operators: reportlab's per-number formatting of ~300 rectangles costs more than the page.
        c.addLiteral(f"q 0 g {module:.5f} 0 0 {module:.5f} 0 0 cm {rects} f Q")
        c.endForm()

    def _header(self) -> None:
        c, doc = self.c, self.doc
        c.saveState()
        c.translate(L.LEFT + 2 * mm, L.PAGE_HEIGHT - 6 * mm - QR_SIZE)
        c.doForm(QR_FORM)
        c.restoreState()
        title = doc.title
        size = 15
        title_width = width(title, size)
        x = (L.PAGE_WIDTH - title_width) / 2
        y = L.PAGE_HEIGHT - 17 * mm
        self._text(x, y, title, size, FRAME)
        c.setStrokeColor(FRAME)
        c.setLineWidth(0.6)
        c.line(x - 2 * mm, y - 2 * mm, x + title_width + 2 * mm, y - 2 * mm)
        c.line(x - 2 * mm, y - 2.8 * mm, x + title_width + 2 * mm, y - 2.8 * mm)
        if doc.is_red:
            mark = "销项负数"
            self._text((L.PAGE_WIDTH - width(mark, 10)) / 2, y - 8 * mm, mark, 10, FRAME)
        label_x = 168 * mm
        for offset, (label, value) in enumerate((("发票号码：", doc.number), ("开票日期：", doc.issued_date))):
            line_y = L.PAGE_HEIGHT - (13 + offset * 6) * mm
            self._text(label_x, line_y, label, 8.5, FRAME)
            self._text(label_x + width(label, 8.5), line_y, value, 8.5)

    def _parties(self) -> None:
        c = self.c
        middle = (L.LEFT + L.RIGHT) / 2
        c.setStrokeColor(FRAME)
        c.setLineWidth(0.8)
        c.line(L.LEFT, L.BOX_TOP, L.RIGHT, L.BOX_TOP)
        c.line(L.LEFT, L.PARTY_BOTTOM, L.RIGHT, L.PARTY_BOTTOM)
        c.setLineWidth(0.5)
        c.line(middle, L.BOX_TOP, middle, L.PARTY_BOTTOM)
        for left, label, party in ((L.LEFT, "购买方信息", self.doc.buyer), (middle, "销售方信息", self.doc.seller)):
            c.line(left + L.PARTY_LABEL_WIDTH, L.BOX_TOP, left + L.PARTY_LABEL_WIDTH, L.PARTY_BOTTOM)
            step = (L.BOX_TOP - L.PARTY_BOTTOM) / (len(label) + 1)
            for i, char in enumerate(label):  # the label stands vertically, one character a line
                y = L.BOX_TOP - step * (i + 1) - 1.2 * mm
                self._text(left + (L.PARTY_LABEL_WIDTH - width(char, 7.5)) / 2, y, char, 7.5, FRAME)
            x = left + L.PARTY_LABEL_WIDTH + 2 * mm
            limit = middle - L.LEFT - L.PARTY_LABEL_WIDTH - 4 * mm
            rows = (("名称：", party.name, 100), ("统一社会信用代码/纳税人识别号：", party.tax_id, 92))
            for label_text, raw, top in rows:
                y = top * mm
                self._text(x, y, label_text, 8, FRAME)
                size = 8.5
                room = limit - width(label_text, 8)
                value = printable(raw)
                while size > 5 and width(value, size) > room:
                    size -= 0.5
                self._text(x + width(label_text, 8), y, value, size)

    def _cell(self, index: int, y: float, text: str) -> None:
        _, _, align = L.COLUMNS[index]
        left, right = self.edges[index] + L.CELL_PAD, self.edges[index + 1] - L.CELL_PAD
        size = L.TEXT_SIZE
        while size > 5 and width(text, size) > right - left:
            size -= 0.5
        self.c.setFont(self.font, size)
        if align == "right":
            self.c.drawRightString(right, y, text)
        elif align == "center":
            self.c.drawCentredString((left + right) / 2, y, text)
        else:
            self.c.drawString(left, y, text)

    def _table(self, page: L.Page) -> float:
        """The column headings and this page's rows; returns the y below the last row."""
        c = self.c
        head_y = L.TABLE_HEAD_BOTTOM + 1.6 * mm
        c.setFillColor(FRAME)
        for index, (heading, _, _) in enumerate(L.COLUMNS):
            c.setFont(self.font, L.TEXT_SIZE)
            c.drawCentredString((self.edges[index] + self.edges[index + 1]) / 2, head_y, heading)
        c.setFillColor(black)
        y = L.TABLE_HEAD_BOTTOM
        for index in page.rows:
            name, cells = self.rows[index]
            height = L.row_height(len(name))
            baseline = y - 3.3 * mm
            c.setFont(self.font, L.TEXT_SIZE)
            for n, text in enumerate(name):
                c.drawString(self.edges[0] + L.CELL_PAD, baseline - n * L.ROW_EXTRA, text)
            for column, text in enumerate(cells, start=1):
                self._cell(column, baseline, text)
            y -= height
        return y

    def _frame(self, bottom: float) -> None:
        c = self.c
        c.setStrokeColor(FRAME)
        c.setLineWidth(0.8)
        c.line(L.LEFT, L.BOX_TOP, L.LEFT, bottom)
        c.line(L.RIGHT, L.BOX_TOP, L.RIGHT, bottom)
        c.line(L.LEFT, bottom, L.RIGHT, bottom)

    def _footer(self, rows_bottom: float) -> None:
        """合计, 价税合计 (大写 / 小写), 备注 and 开票人, under the last page's rows."""
        c, doc = self.c, self.doc
        total_top = L.BOX_BOTTOM + L.FOOTER_HEIGHT  # fixed: the rows' area above it stays blank
        assert rows_bottom >= total_top - 1e-6, "paginate() leaves the footer's room on the last page"
        baseline = total_top - 3.4 * mm
        self._text(self.edges[0] + 8 * mm, baseline, "合    计", L.TEXT_SIZE, FRAME)
        c.setFillColor(black)
        self._cell(5, baseline, f"¥{money_text(doc.total_amount)}")
        self._cell(7, baseline, f"¥{money_text(doc.total_tax)}")
        grand_top = total_top - L.TOTAL_ROW
        remark_top = grand_top - L.GRAND_ROW
        c.setStrokeColor(FRAME)
        c.setLineWidth(0.5)
        c.line(L.LEFT, grand_top, L.RIGHT, grand_top)
        c.line(L.LEFT, remark_top, L.RIGHT, remark_top)
        label_right = L.LEFT + 28 * mm
        c.line(label_right, grand_top, label_right, L.BOX_BOTTOM)
        y = grand_top - 4.6 * mm
        self._text(L.LEFT + 2 * mm, y, "价税合计（大写）", 8, FRAME)
        self._circled_cross(label_right + 5 * mm, y + 1.1 * mm, 1.5 * mm)
        self._text(label_right + 8 * mm, y, doc.total_in_capitals, 9)
        self._text(160 * mm, y, "（小写）", 8, FRAME)
        self._text(160 * mm + width("（小写）", 8), y, doc.total_in_figures, 9)
        self._text(L.LEFT + 2 * mm, remark_top - L.REMARK_BLOCK / 2 - 1 * mm, "备    注", 8, FRAME)
        remark_width = L.RIGHT - label_right - 4 * mm
        size = 7.5
        lines = L.wrap(printable(doc.remark, keep_newlines=True), remark_width, size)
        while size > 5 and len(lines) * size * 1.25 > L.REMARK_BLOCK - 2 * mm:
            size -= 0.5
            lines = L.wrap(printable(doc.remark, keep_newlines=True), remark_width, size)
        for n, text in enumerate(lines):
            self._text(label_right + 2 * mm, remark_top - 3.5 * mm - n * size * 1.25, text, size)
        self._frame(L.BOX_BOTTOM)
        self._text(L.LEFT + 4 * mm, L.BOX_BOTTOM - 4.5 * mm, "开票人：", 8.5, FRAME)
        self._text(L.LEFT + 4 * mm + width("开票人：", 8.5), L.BOX_BOTTOM - 4.5 * mm, printable(doc.issuer), 8.5)

    def _circled_cross(self, x: float, y: float, r: float) -> None:
        """⊗ before the capitals (drawn: the font has no U+2297)."""
        c = self.c
        c.setStrokeColor(black)
        c.setLineWidth(0.5)
        c.circle(x, y, r, stroke=1, fill=0)
        d = r * 0.7071
        c.line(x - d, y - d, x + d, y + d)
        c.line(x - d, y + d, x + d, y - d)

    def _page_number(self, number: int) -> None:
        text = f"第 {number} 页 / 共 {len(self.pages)} 页"
        self._text(L.RIGHT - width(text, 7.5), 4 * mm, text, 7.5, FRAME)
