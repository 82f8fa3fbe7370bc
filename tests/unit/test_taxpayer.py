"""Tax id formats, the GB 32100-2015 check character and log masking."""

from __future__ import annotations

import pytest

from chalicelib.domain.taxpayer import (
    TaxIdStatus,
    check_tax_id,
    clean_tax_id,
    is_valid_format,
    mask,
    uscc_check_char,
    uscc_checksum_ok,
)

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


def test_clean_removes_spaces_and_upper_cases() -> None:
    assert clean_tax_id(" 9135 0100 m000 100y43\t") == "91350100M000100Y43"


def test_mask_keeps_four_characters_at_each_end() -> None:
    assert mask("91350100M000100Y43") == "9135**********0Y43"
    assert mask("123456789012345") == "1234*******2345"
    assert len(mask("91350100M000100Y43")) == 18


def test_mask_hides_short_or_missing_ids_entirely() -> None:
    assert mask("12345678") == "********"
    assert mask("") == ""
    assert mask(None) == ""
