"""The invoice's one font: WenQuanYi Micro Hei (TrueType), embedded as a per-document subset.

The font file is built by ``infra/font.py`` (a GBK subset of the Debian package) and ships inside the
deployment package. It is registered with reportlab once per process, on first use (~45 ms).

Characters the font lacks never vanish silently: :func:`printable` replaces each with
:data:`MISSING_GLYPH` (〓, the typesetter's 缺字 mark, which the font has), and :func:`missing` lists them
so a caller can log or refuse. Control characters become spaces.
"""

from __future__ import annotations

import threading
import unicodedata
from functools import cache
from pathlib import Path

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

FONT_DIR = Path(__file__).resolve().parent / "fonts"
FONT_FILE = FONT_DIR / "WenQuanYiMicroHei-GBK.ttf"
FONT_NAME = "WenQuanYiMicroHei"
#: What a character the font has no glyph for is printed as (U+3013 GETA MARK, 缺字符号).
MISSING_GLYPH = "\u3013"

_lock = threading.Lock()


@cache
def _font() -> TTFont:
    with _lock:
        font = TTFont(FONT_NAME, str(FONT_FILE))
        pdfmetrics.registerFont(font)
        return font


def font_name() -> str:
    """The registered font's name (registers it on first call)."""
    name: str = _font().fontName
    return name


@cache
def _covered() -> frozenset[int]:
    return frozenset(_font().face.charToGlyph)


def missing(text: str) -> frozenset[str]:
    """The characters of ``text`` the font cannot draw (control characters excepted)."""
    covered = _covered()
    return frozenset(c for c in text if ord(c) not in covered and not _control(c))


def _control(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every character the font lacks replaced by MISSING_GLYPH, controls by spaces
    (``\n`` kept when ``keep_newlines``: the wrapping breaks lines there)."""
    covered = _covered()
    if all(ord(c) in covered for c in text):
        return text
    return "".join(
        c if ord(c) in covered or (keep_newlines and c == "\n") else " " if _control(c) else MISSING_GLYPH for c in text
    )


def width(text: str, size: float) -> float:
    measured: float = pdfmetrics.stringWidth(text, font_name(), size)
    return measured
