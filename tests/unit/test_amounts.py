"""Tax-inclusive splits, residual-carry allocation and the tolerance checks."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from chalicelib.domain.amounts import (
    INVOICE_TAX_TOLERANCE,
    allocate,
    carried_taxes,
    decimal_places,
    invoice_tax_deviation,
    invoice_tax_ok,
    is_cents,
    line_tax_ok,
    price_quantity_ok,
    split_inclusive,
    tax_of_exclusive,
    tax_of_inclusive,
    tax_on,
    unit_price_excl,
)


@pytest.mark.parametrize(
    ("total", "rate", "amount", "tax"),
    [
        (D("113.00"), D("0.13"), D("100.00"), D("13.00")),
        (D("100.00"), D("0.06"), D("94.34"), D("5.66")),  # 5.6603… → 5.66
        (D("10.00"), D("0.13"), D("8.85"), D("1.15")),  # 1.1504… → 1.15
        (D("0.01"), D("0.13"), D("0.01"), D("0.00")),
        (D("100.00"), D("0"), D("100.00"), D("0.00")),
        (D("10.90"), D("0.09"), D("10.00"), D("0.90")),
    ],
)
def test_split_inclusive_known_values(total: D, rate: D, amount: D, tax: D) -> None:
    split = split_inclusive(total, rate)
    assert (split.amount, split.tax, split.total) == (amount, tax, total)


def test_tax_rounds_half_up_not_half_even() -> None:
    # With the real VAT rates a cent total never lands exactly on a half cent of tax, so the rounding
    # mode is pinned with a rate of 100%: 0.25 × 1/2 = 0.125 → 0.13 (half-even would give 0.12).
    assert tax_of_inclusive(D("0.25"), D("1")) == D("0.13")
    assert tax_of_inclusive(D("-0.25"), D("1")) == D("-0.13")
    assert tax_of_inclusive(D("53.00"), D("0.06")) == D("3.00")  # exact: 53 × 6/106


def test_negative_totals_split_symmetrically() -> None:
    positive = split_inclusive(D("10.00"), D("0.13"))
    negative = split_inclusive(D("-10.00"), D("0.13"))
    assert negative == (-positive.amount, -positive.tax, -positive.total)


def test_negative_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        tax_of_inclusive(D("1"), D("-0.1"))


def test_unit_price_has_eight_decimals() -> None:
    assert unit_price_excl(D("100.00"), D("3")) == D("33.33333333")
    with pytest.raises(ValueError, match="zero"):
        unit_price_excl(D("1"), D("0"))


def test_allocate_sums_exactly_and_carries_the_residual() -> None:
    parts = allocate(D("10.00"), [D("1"), D("1"), D("1")])
    assert parts == [D("3.33"), D("3.34"), D("3.33")]
    assert sum(parts) == D("10.00")


def test_allocate_is_proportional() -> None:
    assert allocate(D("30.00"), [D("10"), D("20")]) == [D("10.00"), D("20.00")]
    assert allocate(D("1.00"), [D("0"), D("5")]) == [D("0.00"), D("1.00")]


def test_allocate_parts_never_exceed_their_weight() -> None:
    weights = [D("0.01"), D("0.01"), D("99.98")]
    parts = allocate(D("99.99"), weights)
    assert sum(parts) == D("99.99")
    assert all(D(0) <= p <= w for p, w in zip(parts, weights, strict=True))


def test_allocate_refuses_bad_weights() -> None:
    with pytest.raises(ValueError, match="zero"):
        allocate(D("1"), [D("0"), D("0")])
    with pytest.raises(ValueError, match="negative"):
        allocate(D("1"), [D("-1"), D("2")])


def test_line_tolerance_is_six_cents() -> None:
    assert line_tax_ok(D("100.00"), D("0.13"), D("13.06"))
    assert not line_tax_ok(D("100.00"), D("0.13"), D("13.07"))


def test_price_quantity_tolerance_is_one_cent() -> None:
    assert price_quantity_ok(D("33.33333333"), D("3"), D("100.00"))
    assert price_quantity_ok(D("10"), D("2"), D("20.01"))
    assert not price_quantity_ok(D("10"), D("2"), D("20.02"))


def test_invoice_tolerance_defaults_to_1_27_and_is_configurable() -> None:
    lines = [(D("100.00"), D("0.13"), D("11.73"))]  # deviation 1.27
    assert invoice_tax_deviation(lines) == D("1.27")
    assert invoice_tax_ok(lines)
    assert D("1.27") == INVOICE_TAX_TOLERANCE
    assert not invoice_tax_ok([(D("100.00"), D("0.13"), D("11.72"))])
    assert not invoice_tax_ok(lines, tolerance=D("1.00"))


def test_cents_and_decimal_places() -> None:
    assert is_cents(D("1.50")) and is_cents(D("1.500")) and is_cents(D("3"))
    assert not is_cents(D("1.505"))
    assert is_cents(D("1E+30"))
    assert decimal_places(D("1.2300")) == 2
    assert decimal_places(D("1E-9")) == 9


def test_tax_of_an_amount_excluding_tax() -> None:
    assert tax_of_exclusive(D("100.00"), D("0.13")) == D("13.00")
    assert tax_of_exclusive(D("0.99"), D("0.13")) == D("0.13")  # 0.1287
    assert tax_on(D("113.00"), D("0.13"), inclusive=True) == D("13.00")
    assert tax_on(D("113.00"), D("0.13"), inclusive=False) == D("14.69")
    with pytest.raises(ValueError, match="negative"):
        tax_of_exclusive(D("1"), D("-0.1"))


def test_carried_taxes_add_up_to_the_tax_on_the_total() -> None:
    # 227 × ¥1.00 at 13 %: rounded one by one 227 × 0.12 = 27.24; on the total 26.12
    taxes = carried_taxes([D("1.00")] * 227, D("0.13"), inclusive=True)
    assert sum(taxes) == tax_of_inclusive(D("227.00"), D("0.13")) == D("26.12")
    assert set(taxes) == {D("0.11"), D("0.12")}
    taxes = carried_taxes([D("0.99")] * 100, D("0.13"), inclusive=False)
    assert sum(taxes) == D("12.87")  # not 100 × 0.13
    assert all(abs(D("0.99") * D("0.13") - t) <= D("0.015") for t in taxes)


def test_carried_taxes_of_negative_values_mirror_the_positive_ones() -> None:
    values = [D("1.00"), D("2.50"), D("0.07")]
    assert carried_taxes([-v for v in values], D("0.06"), inclusive=True) == [
        -t for t in carried_taxes(values, D("0.06"), inclusive=True)
    ]
    assert carried_taxes([D("0"), D("0.00")], D("0.13"), inclusive=True) == [D("0.00"), D("0.00")]
    with pytest.raises(ValueError, match="same sign"):
        carried_taxes([D("1"), D("-1")], D("0.13"), inclusive=True)


def test_a_one_cent_line_keeps_its_cent_as_amount() -> None:
    # the carry would hand one of these lines 0.01 of tax and leave it an amount of 0.00
    taxes = carried_taxes([D("0.01")] * 100, D("0.13"), inclusive=True)
    assert taxes == [D("0.00")] * 100  # nowhere to move the cents: the group falls short (0.12)
    taxes = carried_taxes([D("0.01"), D("0.01"), D("0.01"), D("0.01"), D("0.01"), D("9.00")], D("0.13"), inclusive=True)
    assert taxes[:5] == [D("0.00")] * 5 and taxes[5] == D("1.04")  # the cent moved to the big line
    assert sum(taxes) == tax_of_inclusive(D("9.05"), D("0.13"))


def test_allocate_is_exact_for_two_thousand_lines_of_a_trillion() -> None:
    weights = [D("999999999999.99")] * 2000
    total = tax_of_inclusive(sum(weights), D("0.13"))
    parts = allocate(total, weights)
    assert sum(parts) == total
    assert max(parts) - min(parts) <= D("0.01")
