"""Tax id formats, the GB 32100-2015 check character and log masking."""

from __future__ import annotations

import pytest

from chalicelib.domain.models import ChecksumPolicy, Party, Violation
from chalicelib.domain.taxpayer import (
    TaxIdProblem,
    TaxIdStatus,
    check_tax_id,
    clean_tax_id,
    is_valid_format,
    mask,
    tax_id_problem,
    uscc_check_char,
    uscc_checksum_ok,
)
from chalicelib.domain.validation import check
from chalicelib.sandbox import rules as sandbox
from tests.support import orders as o

# Real credit codes (published on invoices / company registers); each check character was verified
# by hand against the GB 32100-2015 algorithm.
VALID_USCC = [
    "91350100M000100Y43",
    "91110000710929148A",
    "913302006842554254",
    "91350100611332776W",
    "91320506MA1MMRPX1T",
    "91340700MA8P9Y7Y9D",
    "92230102MAECWNQX6M",
    "91110108551385082Q",
    "914403001922038216",
]


@pytest.mark.parametrize("code", VALID_USCC)
def test_real_credit_codes_pass_the_checksum(code: str) -> None:
    assert uscc_checksum_ok(code)
    assert uscc_check_char(code[:17]) == code[17]
    assert check_tax_id(code) is TaxIdStatus.OK


@pytest.mark.parametrize(
    "code",
    [
        "91350100M000100Y44",  # last character changed
        "91350100M000100Y4A",
        "19350100M000100Y43",  # two characters swapped
        "339902999999789113",  # Nuonuo's sandbox seller id: well formed, wrong check character
    ],
)
def test_altered_credit_codes_fail_the_checksum(code: str) -> None:
    assert not uscc_checksum_ok(code)
    assert check_tax_id(code) is TaxIdStatus.BAD_CHECKSUM


def test_every_single_character_change_is_detected() -> None:
    code = VALID_USCC[0]
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    for position in range(18):
        for replacement in alphabet:
            if replacement == code[position]:
                continue
            changed = code[:position] + replacement + code[position + 1 :]
            assert not uscc_checksum_ok(changed), changed


def test_letters_outside_the_gb32100_alphabet_fail_the_checksum_without_raising() -> None:
    assert not uscc_checksum_ok("91350100M000100I43")  # I is not in the alphabet
    with pytest.raises(ValueError, match="alphabet"):
        uscc_check_char("91350100M000100I4")
    with pytest.raises(ValueError, match="17"):
        uscc_check_char("123")


@pytest.mark.parametrize(
    "tax_id", ["123456789012345", "12345678901234567", "91350100M000100Y43", "12345678901234567890"]
)
def test_accepted_lengths(tax_id: str) -> None:
    assert is_valid_format(tax_id)


@pytest.mark.parametrize(
    "tax_id",
    [
        "",
        "12345678901234",  # 14
        "1234567890123456",  # 16
        "1234567890123456789",  # 19
        "123456789012345678901",  # 21
        "91350100m000100y43",  # lower case
        "91350100M000100Y4-",
        "91350100M000 100Y4",
        "９１３５０１００Ｍ０００１００Ｙ４３",  # full-width digits
    ],
)
def test_rejected_formats(tax_id: str) -> None:
    assert not is_valid_format(tax_id)
    assert check_tax_id(tax_id) is TaxIdStatus.BAD_FORMAT


def test_non_18_character_ids_are_not_checksummed() -> None:
    assert check_tax_id("123456789012345") is TaxIdStatus.OK
    assert check_tax_id("12345678901234567890") is TaxIdStatus.OK


def test_clean_trims_surrounding_whitespace_and_upper_cases() -> None:
    assert clean_tax_id(" 91350100m000100y43\t") == "91350100M000100Y43"
    assert clean_tax_id("\u300091350100M000100Y43\n") == "91350100M000100Y43"  # full-width space, newline


def test_mask_keeps_four_characters_at_each_end() -> None:
    assert mask("91350100M000100Y43") == "9135**********0Y43"
    assert mask("123456789012345") == "1234*******2345"
    assert len(mask("91350100M000100Y43")) == 18


def test_mask_hides_short_or_missing_ids_entirely() -> None:
    assert mask("12345678") == "********"
    assert mask("") == ""
    assert mask(None) == ""


# --- always errors, whatever the checksum policy ---------------------------------------------------
# Region code with letters, but the check character is right: the old checks accepted it outright.
REGION_LETTERS = "91MA0100M000100Y4G"
OUTSIDE_ALPHABET = ["91350100M000100I43", "91350100M000100O43", "S1350100M000100Y43", "9135010VM000100Y43", "Z" * 18]
INNER_WHITESPACE = [
    "91350100M000 00Y43",  # one character of an 18-character id lost to a space
    "9135 0100 M000 100Y43",
    "91350100M000100Y4\t3",
    "91350100M000\u3000100Y43",  # full-width space
    "91350100M000100\xa0Y43",  # no-break space
]


@pytest.mark.parametrize(
    ("tax_id", "problem"),
    [
        *[(tax_id, TaxIdProblem.ALPHABET) for tax_id in OUTSIDE_ALPHABET],
        (REGION_LETTERS, TaxIdProblem.REGION),
        ("91350A00M000100Y43", TaxIdProblem.REGION),
        ("9135010XM000100Y43", TaxIdProblem.REGION),
        *[(tax_id, TaxIdProblem.WHITESPACE) for tax_id in INNER_WHITESPACE],
        ("12345678901234\n", TaxIdProblem.WHITESPACE),  # "^...$" with re.match took 14 + newline as 15
        ("1234567890123456\n", TaxIdProblem.WHITESPACE),
        ("91350100M000100Y4\n", TaxIdProblem.WHITESPACE),
        ("1234567890123456", TaxIdProblem.LENGTH),
        ("91350100M000100Y4-", TaxIdProblem.CHARACTERS),
        ("91350100m000100y43", TaxIdProblem.CHARACTERS),
    ],
)
def test_malformed_ids_are_format_errors_that_say_why(tax_id: str, problem: TaxIdProblem) -> None:
    assert check_tax_id(tax_id) is TaxIdStatus.BAD_FORMAT
    assert not is_valid_format(tax_id)
    assert tax_id_problem(tax_id) is problem


def test_a_well_formed_id_has_no_problem() -> None:
    assert tax_id_problem("91350100M000100Y43") is None
    assert tax_id_problem("91350100M000100Y44") is None  # the checksum is not a format question


def test_letters_outside_the_alphabet_stay_allowed_in_legacy_ids() -> None:
    """tax-rules.md restricts the alphabet of the 18-character credit code only."""
    assert check_tax_id("I2345678901234O") is TaxIdStatus.OK
    assert check_tax_id("S23456789012345V7") is TaxIdStatus.OK
    assert check_tax_id("Z2345678901234567890") is TaxIdStatus.OK


def test_letters_are_fine_outside_the_region_code() -> None:
    assert check_tax_id("A1350100M000100Y43") is not TaxIdStatus.BAD_FORMAT  # registration authority
    assert check_tax_id("9A350100M000100Y43") is not TaxIdStatus.BAD_FORMAT  # organisation type
    assert check_tax_id("91350100MA00100Y43") is not TaxIdStatus.BAD_FORMAT  # organisation code


@pytest.mark.parametrize("policy", list(ChecksumPolicy))
@pytest.mark.parametrize("tax_id", [OUTSIDE_ALPHABET[0], REGION_LETTERS])
def test_format_errors_are_errors_under_every_checksum_policy(tax_id: str, policy: ChecksumPolicy) -> None:
    report = check(
        o.order(buyer=o.company_buyer(tax_id)),
        table=o.domain_table(),
        buyer_checksum_policy=policy,
        seller_checksum_policy=policy,
    )
    assert format_errors(report.errors, "buyer.tax_id")
    assert "buyer.tax_id" not in [w.field for w in report.warnings]
    seller = check(o.order(seller=Party(name="卖家", tax_id=tax_id)), table=o.domain_table())
    assert format_errors(seller.errors, "seller.tax_id")


def format_errors(errors: tuple[Violation, ...], field: str) -> list[str]:
    """The codes of the format errors (any tax id code but the checksum's) on ``field``."""
    codes = [v.code for v in errors if v.field == field]
    assert "tax_id_checksum" not in codes
    return [c for c in codes if c.startswith("tax_id_")]


# --- cleaning ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("typed", INNER_WHITESPACE)
def test_cleaning_keeps_inner_whitespace_so_the_check_reports_it(typed: str) -> None:
    # whitespace was collapsed: "91350100M000 00Y43" became the well-formed 17-character "91350100M00000Y43"
    assert check_tax_id(clean_tax_id(typed)) is TaxIdStatus.BAD_FORMAT
    assert clean_tax_id(typed) == typed


def test_clean_upper_cases_ascii_letters_only() -> None:
    # str.upper() turned the ligature ﬀ into FF: 16 characters became a well-formed 17-character id
    assert check_tax_id(clean_tax_id("9135010ﬀ00100Y43")) is TaxIdStatus.BAD_FORMAT
    assert check_tax_id(clean_tax_id("12345678901234ı")) is TaxIdStatus.BAD_FORMAT  # dotless i, not I
    assert clean_tax_id("9135010ﬀ00100Y43") == "9135010ﬀ00100Y43"


# --- mask -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("keep", [0, -1, -18, 9, 18, 100])
def test_mask_never_shows_the_whole_id(keep: int) -> None:
    assert mask("91350100M000100Y43", keep=keep) == "*" * 18


def test_mask_keeps_at_most_keep_characters_at_each_end() -> None:
    assert mask("91350100M000100Y43", keep=1) == "9****************3"
    assert mask("91350100M000100Y43", keep=8) == "91350100**00100Y43"
    assert mask("123", keep=1) == "1*3"
    assert mask("12", keep=1) == "**"
    assert mask("1", keep=1) == "*"


# --- the sandbox's own reading of the same rules ----------------------------------------------------
def sandbox_verdict(tax_id: str, checksum: sandbox.ChecksumPolicy | None) -> tuple[list[str], list[str]]:
    out = sandbox.Outcome()
    sandbox.check_tax_id(out, tax_id, "buyerTaxNum", checksum=checksum)
    assert all(v.field == "buyerTaxNum" and v.category == sandbox.FIELD for v in out.violations)
    return [f"{v.nuonuo_code} {v.message}" for v in out.violations], out.warnings


@pytest.mark.parametrize("checksum", [*sandbox.ChecksumPolicy, None])
@pytest.mark.parametrize(
    ("tax_id", "says"),
    [
        (OUTSIDE_ALPHABET[0], "字母I"),
        ("S1350100M000100Y43", "字母S"),
        (REGION_LETTERS, "第3至8位"),
        ("91350100M000 00Y43", "空白"),
        ("9135 0100 M000 100Y43", "空白"),
        (" 91350100M000100Y43", "空白"),
        ("12345678901234\n", "空白"),
        ("91350100M000100Y4\n", "空白"),
    ],
)
def test_the_sandbox_rejects_format_errors_under_every_checksum_policy(
    tax_id: str, says: str, checksum: sandbox.ChecksumPolicy | None
) -> None:
    violations, warnings = sandbox_verdict(tax_id, checksum)
    assert len(violations) == 1 and violations[0].startswith("E9307") and says in violations[0], violations
    assert warnings == []


def test_the_sandbox_keeps_its_checksum_policy_and_legacy_ids() -> None:
    assert sandbox_verdict(VALID_USCC[0], sandbox.ChecksumPolicy.REJECT) == ([], [])
    assert sandbox_verdict("A1350100M000100Y43", None) == ([], [])  # letters outside positions 3-8
    assert sandbox_verdict("I2345678901234O", sandbox.ChecksumPolicy.REJECT) == ([], [])
    warned = sandbox_verdict("91350100M000100Y44", sandbox.ChecksumPolicy.WARN)
    assert warned[0] == [] and len(warned[1]) == 1
    assert sandbox_verdict("91350100M000100Y44", sandbox.ChecksumPolicy.REJECT)[0][0].startswith("E9306")
    assert sandbox_verdict("1234567890123456", None)[0][0].startswith("E9306")
