"""Geometry of the 数电票 page and the pagination of its item lines (no drawing here).

The page is 241 × 140 mm, the 数电票 format. Every page repeats the header (QR, title, number, date)
and the two party blocks; the item table flows over as many pages as needed; the 合计 row, 价税合计,
备注 and 开票人 are on the last page only, and every page says 第 n 页 / 共 m 页.
"""

from __future__ import annotations

from dataclasses import dataclass

from reportlab.lib.units import mm as _mm

from chalicelib.pdf.fonts import width

mm: float = _mm  # points per millimetre (reportlab is untyped)

PAGE_WIDTH, PAGE_HEIGHT = 241 * mm, 140 * mm
LEFT, RIGHT = 10 * mm, 231 * mm
BOX_TOP = 110 * mm  # the frame's top edge, below the header
PARTY_BOTTOM = 90 * mm  # parties above, item table below
TABLE_HEAD_BOTTOM = 85 * mm
BOX_BOTTOM = 14 * mm
PARTY_LABEL_WIDTH = 6 * mm
#: 合计 row, 价税合计 row and 备注 block, on the last page.
TOTAL_ROW, GRAND_ROW, REMARK_BLOCK = 5 * mm, 7 * mm, 15 * mm
FOOTER_HEIGHT = TOTAL_ROW + GRAND_ROW + REMARK_BLOCK
ROW = 4.6 * mm  # an item row of one text line
ROW_EXTRA = 3.0 * mm  # each further line of a wrapped name
MAX_NAME_LINES = 3
TEXT_SIZE = 7.5
CELL_PAD = 1.8 * mm

#: (heading, width, alignment) of the eight item columns, left to right; they fill LEFT … RIGHT.
COLUMNS: tuple[tuple[str, float, str], ...] = (
    ("项目名称", 58 * mm, "left"),
    ("规格型号", 24 * mm, "left"),
    ("单位", 12 * mm, "center"),
    ("数量", 20 * mm, "right"),
    ("单价", 26 * mm, "right"),
    ("金额", 28 * mm, "right"),
    ("税率/征收率", 23 * mm, "center"),
    ("税额", 30 * mm, "right"),
)


def column_edges() -> tuple[float, ...]:
    edges = [LEFT]
    for _, w, _ in COLUMNS:
        edges.append(edges[-1] + w)
    return tuple(edges)


def wrap(text: str, limit: float, size: float, max_lines: int | None = None) -> list[str]:
    """Greedy wrap by character (CJK text has no spaces), honouring ``\\n``; the last kept line ends
    with … when lines were cut."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        current = ""
        for char in paragraph:
            if current and width(current + char, size) > limit:
                lines.append(current)
                current = char
            else:
                current += char
        lines.append(current)
    if max_lines is not None and len(lines) > max_lines:
        kept = lines[:max_lines]
        last = kept[-1]
        while last and width(last + "…", size) > limit:
            last = last[:-1]
        kept[-1] = last + "…"
        return kept
    return lines


def row_height(name_lines: int) -> float:
    return ROW + ROW_EXTRA * (max(name_lines, 1) - 1)


@dataclass(frozen=True)
class Page:
    number: int  # 1-based
    rows: tuple[int, ...]  # indexes into the line list
    last: bool


def paginate(heights: list[float]) -> list[Page]:
    """Fill pages with rows; the last page also holds the footer. A page that could take all the
    remaining rows but not the footer leaves one or more rows to the next page, so that the totals
    never stand alone on a page (unless there are no lines at all)."""
    full = TABLE_HEAD_BOTTOM - BOX_BOTTOM
    last_room = full - FOOTER_HEIGHT
    pages: list[Page] = []
    index, count = 0, len(heights)
    while True:
        remaining = heights[index:]
        if sum(remaining) <= last_room + 1e-6:
            pages.append(Page(len(pages) + 1, tuple(range(index, count)), True))
            return pages
        used, rows = 0.0, list[int]()
        while index < count and used + heights[index] <= full + 1e-6:
            if index == count - 1 and rows:  # keep at least the last row for the last page
                break
            used += heights[index]
            rows.append(index)
            index += 1
        if not rows:  # a single row taller than a page cannot happen (names are capped); be safe
            rows.append(index)
            index += 1
        pages.append(Page(len(pages) + 1, tuple(rows), False))
