"""The invoice's QR code (segno): as vector runs for the PDF and as inline SVG for the customer's page.

The content is :func:`chalicelib.domain.invoice_document.verification_text`; this module only draws.
Error correction M (15 %), a quiet zone of 4 modules (the QR standard's minimum).
"""

from __future__ import annotations

from functools import lru_cache

import segno

ERROR = "m"
QUIET_ZONE = 4


@lru_cache(maxsize=64)
def _code(text: str) -> segno.QRCode:
    return segno.make_qr(text, error=ERROR, boost_error=False)


def runs(text: str) -> tuple[int, tuple[tuple[int, int, int], ...]]:
    """``(size, runs)``: the symbol's width in modules (no quiet zone) and its dark modules as
    horizontal runs ``(row, column, length)``, row 0 at the top."""
    code = _code(text)
    out: list[tuple[int, int, int]] = []
    for row, line in enumerate(code.matrix):
        column = 0
        width = len(line)
        while column < width:
            if line[column] & 1:
                start = column
                while column < width and line[column] & 1:
                    column += 1
                out.append((row, start, column - start))
            else:
                column += 1
    return len(code.matrix), tuple(out)


def qr_svg(text: str) -> str:
    """Inline SVG markup of the QR code (no XML prolog), scalable: a ``viewBox`` in modules, no size."""
    size, dark = runs(text)
    full = size + 2 * QUIET_ZONE
    path = "".join(f"M{c + QUIET_ZONE} {r + QUIET_ZONE}h{n}v1h-{n}z" for r, c, n in dark)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {full} {full}" class="qr" role="img" '
        f'aria-label="发票二维码 invoice QR code" shape-rendering="crispEdges">'
        f'<rect width="{full}" height="{full}" fill="#fff"/>'
        f'<path d="{path}" fill="#000"/></svg>'
    )
