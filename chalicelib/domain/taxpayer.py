"""Taxpayer identification numbers (纳税人识别号): formats, the GB 32100-2015 checksum, masking.

A tax id is 15, 17, 18 or 20 characters of digits and upper-case letters. The 18-character form is
the unified social credit code (统一社会信用代码), whose last character is a checksum over the first
17 in a 31-letter alphabet (no I, O, S, V, Z). Real sandboxes and some legitimate ids (an individual
business registered under an identity card number) fail that checksum, so whether a failure is an
error or a warning is a policy (:class:`~chalicelib.domain.models.ChecksumPolicy`) decided by the
caller; this module only answers questions and never raises for bad input.
"""

from __future__ import annotations

import re
from enum import StrEnum

#: GB 32100-2015 alphabet: the position of a character is its value.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
#: Weights of positions 1–17.
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
USCC_LENGTH = 18
TAX_ID_LENGTHS = frozenset({15, 17, 18, 20})

_FORMAT_RE = re.compile(r"^[0-9A-Z]+$")
_WHITESPACE_RE = re.compile(r"\s+")
_VALUES = {c: i for i, c in enumerate(USCC_ALPHABET)}


class TaxIdStatus(StrEnum):
    """Outcome of :func:`check_tax_id`."""

    OK = "ok"
    BAD_FORMAT = "bad_format"  # wrong length or characters: always an error
    BAD_CHECKSUM = "bad_checksum"  # 18 characters, well formed, GB 32100 check fails: policy decides


def clean_tax_id(raw: str) -> str:
    """What a person meant: surrounding and inner whitespace removed, letters upper-cased.

    Used when a platform hands over a buyer-typed id (``9135 0100 m000 100y43``); the result still
    has to pass :func:`is_valid_format`.
    """
    return _WHITESPACE_RE.sub("", raw).upper()


def is_valid_format(tax_id: str) -> bool:
    """15, 17, 18 or 20 characters, digits and upper-case ASCII letters only."""
    return len(tax_id) in TAX_ID_LENGTHS and bool(_FORMAT_RE.match(tax_id))


def uscc_check_char(first17: str) -> str:
    """The GB 32100 check character for the first 17 characters of a credit code.

    Raises ``ValueError`` when the input is not 17 characters of the 31-letter alphabet.
    """
    if len(first17) != USCC_LENGTH - 1:
        raise ValueError("a credit code body has 17 characters")
    try:
        total = sum(_VALUES[c] * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    except KeyError as exc:
        raise ValueError(f"character {exc.args[0]!r} is not in the GB 32100 alphabet") from exc
    return USCC_ALPHABET[(31 - total % 31) % 31]


def uscc_checksum_ok(tax_id: str) -> bool:
    """True when ``tax_id`` is an 18-character credit code whose check character is right."""
    if len(tax_id) != USCC_LENGTH:
        return False
    try:
        return uscc_check_char(tax_id[:17]) == tax_id[17]
    except ValueError:
        return False


def check_tax_id(tax_id: str) -> TaxIdStatus:
    """Format first; then, for 18-character ids only, the GB 32100 checksum."""
    if not is_valid_format(tax_id):
        return TaxIdStatus.BAD_FORMAT
    if len(tax_id) == USCC_LENGTH and not uscc_checksum_ok(tax_id):
        return TaxIdStatus.BAD_CHECKSUM
    return TaxIdStatus.OK


def mask(tax_id: str | None, *, keep: int = 4) -> str:
    """A tax id safe for logs: the first and last ``keep`` characters, the middle as ``*``.

    ``91350100M000100Y43`` → ``9135**********0Y43``. Ids too short to keep both ends are fully
    masked; ``None`` gives an empty string.
    """
    if not tax_id:
        return ""
    if len(tax_id) <= 2 * keep:
        return "*" * len(tax_id)
    return tax_id[:keep] + "*" * (len(tax_id) - 2 * keep) + tax_id[-keep:]
