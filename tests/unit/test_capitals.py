"""价税合计 in capitals: bank-practice examples, the convention's choices, refusals, and the round trip."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.capitals import MAX_AMOUNT, CapitalsError, amount_in_capitals, parse_capitals

#: The examples of the PBoC rules for filling in bills (正确填写票据和结算凭证的基本规定), where they
#: allow two forms the one this project writes, and the issue's own examples.
BANK_PRACTICE = [
    ("1409.50", "壹仟肆佰零玖圆伍角"),  # a zero inside → 零
    ("6007.14", "陆仟零柒圆壹角肆分"),  # a run of zeros → one 零
    ("1680.32", "壹仟陆佰捌拾圆叁角贰分"),  # 圆 digit zero, 角 not: 零 may be left out — we leave it out
    ("107000.53", "壹拾万柒仟圆伍角叁分"),  # 万 digit zero, 仟 not: likewise
    ("16409.02", "壹万陆仟肆佰零玖圆零贰分"),  # 角 zero, 分 not: 零 after 圆 (mandatory)
    ("325.04", "叁佰贰拾伍圆零肆分"),
    ("108.00", "壹佰零捌圆整"),
    ("1000.05", "壹仟圆零伍分"),
    ("0.50", "伍角"),  # no 整 after 角
    ("10.30", "壹拾圆叁角"),  # 壹拾, never a bare 拾
    ("0.05", "伍分"),
    ("0.01", "壹分"),
    ("0.00", "零圆整"),
    ("10.00", "壹拾圆整"),
    ("110.00", "壹佰壹拾圆整"),
    ("100700.00", "壹拾万零柒佰圆整"),
    ("1010101.01", "壹佰零壹万零壹佰零壹圆零壹分"),
    ("100000000.00", "壹亿圆整"),
    ("100001000.00", "壹亿零壹仟圆整"),  # a skipped 万 group → 零
    ("1000000000.10", "壹拾亿圆壹角"),
    ("999999999999.99", "玖仟玖佰玖拾玖亿玖仟玖佰玖拾玖万玖仟玖佰玖拾玖圆玖角玖分"),
    ("-108.00", "负壹佰零捌圆整"),  # a red invoice
    ("-0.50", "负伍角"),
]


@pytest.mark.parametrize(("figure", "capitals"), BANK_PRACTICE)
def test_bank_practice_examples(figure: str, capitals: str) -> None:
    assert amount_in_capitals(Decimal(figure)) == capitals
    assert parse_capitals(capitals) == Decimal(figure)


def test_fewer_decimals_are_the_same_amount() -> None:
    assert amount_in_capitals(Decimal("108")) == amount_in_capitals(Decimal("108.0")) == "壹佰零捌圆整"
    assert amount_in_capitals(Decimal("1.000")) == "壹圆整"  # trailing zeros are not extra decimals


@pytest.mark.parametrize(
    ("variant", "figure"),
    [
        ("壹拾万零柒仟元伍角叁分", "107000.53"),  # the other allowed form: 零 at the 万 boundary, 元
        ("壹仟陆佰捌拾元零叁角贰分", "1680.32"),
        ("拾圆整", "10.00"),  # a bare 拾
        ("壹佰零捌元正", "108.00"),  # 元 and 正
        ("伍角整", "0.50"),  # 整 after 角
        ("壹拾亿零柒仟圆整", "1000007000.00"),
    ],
)
def test_parse_accepts_the_variants_the_rules_allow(variant: str, figure: str) -> None:
    assert parse_capitals(variant) == Decimal(figure)


@pytest.mark.parametrize("amount", ["1.005", "0.001", "NaN", "Infinity", "1000000000000.00", "-1000000000000"])
def test_refuses_what_cannot_be_written(amount: str) -> None:
    with pytest.raises(CapitalsError):
        amount_in_capitals(Decimal(amount))


def test_refuses_a_float() -> None:
    with pytest.raises(CapitalsError):
        amount_in_capitals(1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "负",
        "圆整",
        "壹壹圆整",
        "壹佰佰圆整",
        "壹拾佰圆整",
        "壹分整",
        "壹圆壹分壹角",
        "壹圆伍",
        "ABC",
        "壹万万圆整",
        "整",
    ],
)
def test_parse_refuses_what_is_not_an_amount(text: str) -> None:
    with pytest.raises(CapitalsError):
        parse_capitals(text)


_cents = st.integers(min_value=-int(MAX_AMOUNT * 100), max_value=int(MAX_AMOUNT * 100))


@settings(max_examples=500, deadline=None)
@given(_cents)
def test_round_trip_over_the_whole_range(cents: int) -> None:
    amount = Decimal(cents).scaleb(-2)
    text = amount_in_capitals(amount)
    assert parse_capitals(text) == amount
    assert text.startswith("负") == (cents < 0)
    assert "零零" not in text and not text.endswith("零")
    assert text.endswith("整") == (cents % 100 == 0)  # 整 exactly when there are no 角 and no 分


_sparse_digits = st.lists(st.sampled_from([0, 0, 0, 1, 9]), min_size=14, max_size=14)


@settings(max_examples=300, deadline=None)
@given(_sparse_digits, st.booleans())
def test_round_trip_of_sparse_amounts(digits: list[int], negative: bool) -> None:
    """Amounts with many zeros (whole groups skipped) are where the 零 rules live."""
    cents = int("".join(map(str, digits)))
    amount = Decimal(-cents if negative else cents).scaleb(-2)
    assert parse_capitals(amount_in_capitals(amount)) == amount


def test_below_one_yuan_nothing_precedes_jiao_or_fen() -> None:
    for cents in range(1, 100):
        text = amount_in_capitals(Decimal(cents).scaleb(-2))
        assert "圆" not in text and not text.startswith("零"), text
        assert parse_capitals(text) == Decimal(cents).scaleb(-2)
