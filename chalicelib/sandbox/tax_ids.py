"""The sandbox's own reading of tax ids (纳税人识别号 / 统一社会信用代码, GB 32100-2015), stdlib only.

Independent of ``chalicelib.domain.taxpayer`` on purpose: the sandbox is a second implementation.
"""

from __future__ import annotations

import re
from enum import StrEnum

from chalicelib.sandbox.draft import FIELD, Outcome

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
TAX_ID_LENGTHS = (15, 17, 18, 20)
_TAX_ID_RE = re.compile(r"[0-9A-Z]+")  # fullmatch: "$" would let a trailing newline through
_USCC_REGION_RE = re.compile(r"[0-9]{6}")  # positions 3-8 of a credit code: the region code


class ChecksumPolicy(StrEnum):
    REJECT = "reject"
    WARN = "warn"


def uscc_valid(code: str) -> bool:
    if len(code) != 18 or any(ch not in USCC_ALPHABET for ch in code):
        return False
    total = sum(USCC_ALPHABET.index(ch) * w for ch, w in zip(code[:17], USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31] == code[17]


def check_tax_id(
    out: Outcome, value: str, fld: str, *, checksum: ChecksumPolicy | None, what: str = "纳税人识别号"
) -> None:
    """Format (15/17/18/20, digits + upper case); for 18 characters the USCC checksum per ``checksum``.

    Whitespace anywhere, a wrong length, other characters and, for 18 characters, a letter outside the
    GB 32100 alphabet or a non-digit in the region code (positions 3-8) are always format errors;
    only the check character follows ``checksum``, and ``checksum=None`` skips it (the seller's own
    id, as on the real sandbox).
    """
    if any(ch.isspace() for ch in value):
        out.add(FIELD, fld, f"{fld} {what}不能包含空格或其他空白字符", "E9307")
        return
    if len(value) not in TAX_ID_LENGTHS:
        out.add(FIELD, fld, f"{fld} {what}长度必须为15、17、18或20位", "E9306")
        return
    if not _TAX_ID_RE.fullmatch(value):
        out.add(FIELD, fld, f"{fld} {what}只能包含数字和大写字母", "E9307")
        return
    if len(value) == 18:
        outside = "、".join(sorted({ch for ch in value if ch not in USCC_ALPHABET}))
        if outside:
            out.add(FIELD, fld, f"{fld} 统一社会信用代码不能包含字母{outside}（不在GB 32100-2015字符集中）", "E9307")
            return
        if not _USCC_REGION_RE.fullmatch(value[2:8]):
            out.add(FIELD, fld, f"{fld} 统一社会信用代码第3至8位（行政区划码）必须为数字", "E9307")
            return
    if len(value) == 18 and checksum is not None and not uscc_valid(value):
        msg = f"{fld} 统一社会信用代码校验位不正确"
        if checksum is ChecksumPolicy.REJECT:
            out.add(FIELD, fld, msg, "E9306")
        else:
            out.warnings.append(msg)
