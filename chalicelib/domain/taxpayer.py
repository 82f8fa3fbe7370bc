"""Taxpayer identification numbers (纳税人识别号): formats, the GB 32100-2015 checksum, masking.

A tax id is 15, 17, 18 or 20 characters of digits and upper-case letters. The 18-character form is
the unified social credit code (统一社会信用代码), whose last character is a checksum over the first
17 in a 31-letter alphabet (no I, O, S, V, Z) and whose positions 3–8 are the administrative region
code (6 digits). A malformed id (:class:`TaxIdProblem`: whitespace, length, characters, a letter
outside the GB 32100 alphabet, a letter in the region code) is always an error. Only a well-formed
credit code whose check character is wrong is a matter of policy: real sandboxes and some legitimate
ids (an individual business registered under an identity card number) fail that checksum, so whether
a failure is an error or a warning (:class:`~chalicelib.domain.models.ChecksumPolicy`) is decided by
the caller; this module only answers questions and never raises for bad input.
"""

from __future__ import annotations

import re
import string
from enum import StrEnum

#: GB 32100-2015 alphabet: the position of a character is its value.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
#: Weights of positions 1–17.
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
USCC_LENGTH = 18
#: Positions 3–8 of a credit code: the administrative region code, digits only.
USCC_REGION = slice(2, 8)
TAX_ID_LENGTHS = frozenset({15, 17, 18, 20})

_CHARACTERS_RE = re.compile(r"[0-9A-Z]+")
_REGION_RE = re.compile(r"[0-9]{6}")
_WHITESPACE_RE = re.compile(r"\s")
_ASCII_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)
_VALUES = {c: i for i, c in enumerate(USCC_ALPHABET)}


class TaxIdStatus(StrEnum):
    """Outcome of :func:`check_tax_id`."""

    OK = "ok"
    BAD_FORMAT = "bad_format"  # any TaxIdProblem: always an error
    BAD_CHECKSUM = "bad_checksum"  # 18 characters, well formed, GB 32100 check fails: policy decides


class TaxIdProblem(StrEnum):
    """Why an id is malformed (:func:`tax_id_problem`); every one is an error whatever the policy.

    The caller chooses the message (validation codes live in the catalogue, not here).
    """

    WHITESPACE = "whitespace"  # a space, tab, newline … anywhere (trim with clean_tax_id first)
    LENGTH = "length"  # not 15, 17, 18 or 20 characters
    CHARACTERS = "characters"  # not only ASCII digits and upper-case letters
    ALPHABET = "alphabet"  # 18 characters: I, O, S, V or Z (outside the GB 32100 alphabet)
    REGION = "region"  # 18 characters: positions 3–8 not six digits


def clean_tax_id(raw: str) -> str:
    """What a person meant: surrounding whitespace trimmed, ASCII letters upper-cased.

    Whitespace *inside* the id is kept, so :func:`tax_id_problem` reports it: collapsing it would turn
    an 18-character id with one character lost to a space into a well-formed 17-character one. Only
    ASCII letters are upper-cased (``str.upper`` maps ``ß`` to ``SS`` and ``ı`` to ``I``).
    """
    return raw.strip().translate(_ASCII_UPPER)


def tax_id_problem(tax_id: str) -> TaxIdProblem | None:
    """The first thing wrong with the form of ``tax_id``, or ``None`` when it is well formed."""
    if _WHITESPACE_RE.search(tax_id):
        return TaxIdProblem.WHITESPACE
    if len(tax_id) not in TAX_ID_LENGTHS:
        return TaxIdProblem.LENGTH
    if not _CHARACTERS_RE.fullmatch(tax_id):
        return TaxIdProblem.CHARACTERS
    if len(tax_id) == USCC_LENGTH:
        if any(c not in _VALUES for c in tax_id):
            return TaxIdProblem.ALPHABET
        if not _REGION_RE.fullmatch(tax_id[USCC_REGION]):
            return TaxIdProblem.REGION
    return None


def is_valid_format(tax_id: str) -> bool:
    """No :func:`tax_id_problem`: 15, 17, 18 or 20 ASCII digits and upper-case letters, and for 18
    characters the GB 32100 alphabet with a six-digit region code."""
    return tax_id_problem(tax_id) is None


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
    """Format first (:func:`tax_id_problem`); then, for 18-character ids only, the GB 32100 checksum."""
    if tax_id_problem(tax_id) is not None:
        return TaxIdStatus.BAD_FORMAT
    if len(tax_id) == USCC_LENGTH and not uscc_checksum_ok(tax_id):
        return TaxIdStatus.BAD_CHECKSUM
    return TaxIdStatus.OK


def mask(tax_id: str | None, *, keep: int = 4) -> str:
    """A tax id safe for logs: the first and last ``keep`` characters, the middle as ``*``.

    ``91350100M000100Y43`` → ``9135**********0Y43``; the result has the id's length. At most ``keep``
    characters show at each end and never the whole id: an id of ``2 * keep`` characters or fewer,
    and any id when ``keep`` is zero or negative, is masked entirely. ``None`` gives an empty string.
    """
    if not tax_id:
        return ""
    if keep <= 0 or len(tax_id) <= 2 * keep:
        return "*" * len(tax_id)
    return tax_id[:keep] + "*" * (len(tax_id) - 2 * keep) + tax_id[-keep:]
