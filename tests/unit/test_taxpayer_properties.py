"""Properties of the tax id checks (domain and sandbox) against a reference written from GB 32100-2015.

The reference below is a second reading of the standard, not a copy of either implementation:
the code alphabet is the 10 digits and the 26 capital letters without I, O, S, V and Z, a character's
value is its rank in that alphabet, the weight of position i (1–17) is 3^(i−1) mod 31, and the check
value is 31 − (Σ value × weight mod 31), where 31 stands for 0. Positions 3–8 are the administrative
region code, digits only. Legacy 纳税人识别号 of 15, 17 or 20 characters have no check character and
take any ASCII digit or capital letter (tax-rules.md).
"""

from __future__ import annotations

import string

from hypothesis import example, given
from hypothesis import strategies as st

from chalicelib.domain.taxpayer import (
    TaxIdStatus,
    check_tax_id,
    clean_tax_id,
    is_valid_format,
    mask,
    uscc_check_char,
    uscc_checksum_ok,
)
from chalicelib.sandbox import rules as sandbox

# --- the reference ----------------------------------------------------------------------------------
REF_ALPHABET = "".join(c for c in string.digits + string.ascii_uppercase if c not in "IOSVZ")
REF_WEIGHTS = [pow(3, i, 31) for i in range(17)]
NOT_IN_ALPHABET = "IOSVZ"
ASCII_CODE_CHARS = string.digits + string.ascii_uppercase
LEGACY_LENGTHS = (15, 17, 20)
WHITESPACE = (" ", "\t", "\n", "\r", "\u3000", "\xa0", "\u2003")


def ref_check(body: str) -> str:
    value = 31 - sum(REF_ALPHABET.index(c) * w for c, w in zip(body, REF_WEIGHTS, strict=True)) % 31
    return REF_ALPHABET[0 if value == 31 else value]


def ref_verdict(tax_id: str) -> str:
    """The verdict, "format", "checksum" or "ok", from the rules as tax-rules.md states them."""
    if len(tax_id) not in (*LEGACY_LENGTHS, 18) or any(c not in ASCII_CODE_CHARS for c in tax_id):
        return "format"
    if len(tax_id) != 18:
        return "ok"
    if any(c not in REF_ALPHABET for c in tax_id) or not all(c in string.digits for c in tax_id[2:8]):
        return "format"
    return "ok" if ref_check(tax_id[:17]) == tax_id[17] else "checksum"


def domain_verdict(tax_id: str) -> str:
    return {TaxIdStatus.OK: "ok", TaxIdStatus.BAD_FORMAT: "format", TaxIdStatus.BAD_CHECKSUM: "checksum"}[
        check_tax_id(tax_id)
    ]


def sandbox_verdict(tax_id: str) -> str:
    """The sandbox's verdict, probing it under each checksum setting."""
    verdicts = {}
    for policy in (None, sandbox.ChecksumPolicy.WARN, sandbox.ChecksumPolicy.REJECT):
        out = sandbox.Outcome()
        sandbox.check_tax_id(out, tax_id, "gmfnsrsbh", checksum=policy)
        verdicts[policy] = (len(out.violations), len(out.warnings))
    if verdicts[None] == (1, 0):  # refused even with the checksum skipped: a format error, always
        assert set(verdicts.values()) == {(1, 0)}, verdicts
        return "format"
    assert verdicts[None] == (0, 0), verdicts
    if verdicts[sandbox.ChecksumPolicy.REJECT] == (0, 0):
        assert verdicts[sandbox.ChecksumPolicy.WARN] == (0, 0), verdicts
        return "ok"
    assert verdicts[sandbox.ChecksumPolicy.WARN] == (0, 1), verdicts
    assert verdicts[sandbox.ChecksumPolicy.REJECT] == (1, 0), verdicts
    return "checksum"


def test_the_reference_knows_a_published_code() -> None:
    assert REF_WEIGHTS == [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
    assert len(REF_ALPHABET) == 31
    assert ref_verdict("91350100M000100Y43") == "ok"
    assert ref_verdict("91110000710929148A") == "ok"


# --- strategies -------------------------------------------------------------------------------------
alphabet_char = st.sampled_from(REF_ALPHABET)
digit = st.sampled_from(string.digits)


@st.composite
def valid_usccs(draw: st.DrawFn) -> str:
    """Registration authority, organisation type, six-digit region, nine-character organisation code."""
    body = "".join(
        [draw(alphabet_char), draw(alphabet_char)]
        + [draw(digit) for _ in range(6)]
        + [draw(alphabet_char) for _ in range(9)]
    )
    return body + ref_check(body)


legacy_ids = st.sampled_from(LEGACY_LENGTHS).flatmap(
    lambda n: st.text(alphabet=st.sampled_from(ASCII_CODE_CHARS), min_size=n, max_size=n)
)
#: Any character a buyer, a platform or an encoding mix-up may hand over in place of one.
replacement_char = st.one_of(
    st.sampled_from(ASCII_CODE_CHARS),
    st.sampled_from(string.ascii_lowercase + string.punctuation),
    st.sampled_from(WHITESPACE),
    st.sampled_from("０１９ＡＭＹｉıſﬀß"),  # full-width, dotless i, long s, a ligature, eszett
    st.characters(),
)


@st.composite
def single_changes(draw: st.DrawFn, ids: st.SearchStrategy[str]) -> tuple[str, str]:
    """(id, the id with exactly one character replaced by a different one)."""
    tax_id = draw(ids)
    position = draw(st.integers(0, len(tax_id) - 1))
    new = draw(replacement_char.filter(lambda c: c != tax_id[position]))
    return tax_id, tax_id[:position] + new + tax_id[position + 1 :]


#: Strings near the shape of a tax id: valid ones, changed ones, random ones of code characters.
tax_id_like = st.one_of(
    valid_usccs(),
    legacy_ids,
    single_changes(valid_usccs()).map(lambda pair: pair[1]),
    single_changes(legacy_ids).map(lambda pair: pair[1]),
    st.text(alphabet=st.sampled_from(ASCII_CODE_CHARS), min_size=14, max_size=21),
    st.text(max_size=22),
)


# --- properties -------------------------------------------------------------------------------------
@given(valid_usccs())
@example("91350100M000100Y43")
def test_generated_credit_codes_are_accepted(tax_id: str) -> None:
    assert check_tax_id(tax_id) is TaxIdStatus.OK
    assert is_valid_format(tax_id) and uscc_checksum_ok(tax_id)
    assert uscc_check_char(tax_id[:17]) == tax_id[17]
    assert sandbox.uscc_valid(tax_id)
    assert sandbox_verdict(tax_id) == "ok"


@given(single_changes(valid_usccs()))
def test_a_single_character_change_is_rejected_or_is_another_valid_id(pair: tuple[str, str]) -> None:
    _, changed = pair
    verdict = domain_verdict(changed)
    assert verdict != "ok" or ref_verdict(changed) == "ok"
    assert sandbox_verdict(changed) == verdict
    # with weights and values below the prime 31, GB 32100 catches every single substitution
    assert verdict != "ok"


@given(valid_usccs(), st.sampled_from(WHITESPACE))
def test_a_character_lost_to_whitespace_inside_the_id_is_never_accepted(original: str, space: str) -> None:
    for position in range(1, 17):  # inside: cleaning trims only the ends
        typed = original[:position] + space + original[position + 1 :]
        assert check_tax_id(clean_tax_id(typed)) is TaxIdStatus.BAD_FORMAT
        assert sandbox_verdict(typed) == "format"


@given(single_changes(legacy_ids))
def test_a_single_character_change_of_a_legacy_id_keeps_the_legacy_rules(pair: tuple[str, str]) -> None:
    _, changed = pair
    assert domain_verdict(changed) == ref_verdict(changed) == sandbox_verdict(changed)


@given(tax_id_like)
@example("91350100M000100I43")
@example("91MA0100M000100Y4G")
@example("91350100M000100Y4\n")
@example("12345678901234\n")
def test_domain_and_sandbox_agree_with_the_reference(tax_id: str) -> None:
    assert domain_verdict(tax_id) == ref_verdict(tax_id)
    assert sandbox_verdict(tax_id) == ref_verdict(tax_id)


@given(valid_usccs(), st.integers(0, 17), st.sampled_from(NOT_IN_ALPHABET))
def test_a_letter_outside_the_alphabet_is_a_format_error_wherever_it_is(tax_id: str, position: int, bad: str) -> None:
    changed = tax_id[:position] + bad + tax_id[position + 1 :]
    assert check_tax_id(changed) is TaxIdStatus.BAD_FORMAT
    assert sandbox_verdict(changed) == "format"


@given(valid_usccs(), st.integers(2, 7), st.sampled_from(REF_ALPHABET[10:]))
def test_a_letter_in_the_region_code_is_a_format_error_even_with_a_right_check(
    tax_id: str, position: int, letter: str
) -> None:
    body = tax_id[:position] + letter + tax_id[position + 1 : 17]
    changed = body + ref_check(body)  # the checksum is right: only the region rule can refuse it
    assert check_tax_id(changed) is TaxIdStatus.BAD_FORMAT
    assert sandbox_verdict(changed) == "format"


@given(legacy_ids)
def test_legacy_ids_take_any_code_character_and_no_checksum(tax_id: str) -> None:
    assert check_tax_id(tax_id) is TaxIdStatus.OK
    assert sandbox_verdict(tax_id) == "ok"


@given(st.text(alphabet=st.characters(blacklist_characters="*")), st.integers(-20, 30))
@example("91350100M000100Y43", 0)
@example("91350100M000100Y43", 9)
@example("91350100M000100Y43", -1)
def test_mask_never_leaks_more_than_keep_characters_at_either_end(tax_id: str, keep: int) -> None:
    masked = mask(tax_id, keep=keep)
    assert len(masked) == len(tax_id)
    shown = [i for i, c in enumerate(masked) if c != "*"]
    for i in shown:
        assert masked[i] == tax_id[i]
        assert i < keep or i >= len(tax_id) - keep
    assert len(shown) <= 2 * max(keep, 0)
    assert len(shown) < len(tax_id) or not tax_id  # never the whole id


def test_mask_of_nothing_is_empty() -> None:
    assert mask(None) == mask("") == ""
