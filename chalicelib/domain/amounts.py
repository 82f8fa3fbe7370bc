"""Tax arithmetic: splitting tax-inclusive money, allocating totals with residual carry, tolerances.

Everything is ``Decimal`` and every rounding is ROUND_HALF_UP (through :func:`~.money.q2` /
:func:`~.money.q8`). The rules come from ``tax-rules.md``:

- tax-inclusive split: ``tax = q2(total × r / (1 + r))``, ``amount = total − tax`` (so amount + tax
  is the total exactly, for positive and negative totals alike — HALF_UP is symmetric around zero);
- unit price excluding tax: up to 8 decimals;
- per line ``|amount × r − tax| ≤ 0.06`` (Nuonuo E9131) and ``|price × quantity − amount| ≤ 0.01``;
- per invoice ``|Σ amount × r − Σ tax| ≤ 1.27`` — *inferred*: seen in several codebases, in no
  official text, hence a parameter.

:func:`allocate` spreads a total over weights so that the rounded parts add up to the total exactly
(cumulative rounding: each part is the difference of two rounded running sums, which is the
"residual carry" technique); it is used for order-level discounts and partial refunds.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import NamedTuple

from chalicelib.domain.money import q2, q8

LINE_TAX_TOLERANCE = Decimal("0.06")
PRICE_QUANTITY_TOLERANCE = Decimal("0.01")
#: *(inferred)* no official source; callers may pass their own.
INVOICE_TAX_TOLERANCE = Decimal("1.27")

_ONE = Decimal(1)
_ZERO = Decimal(0)


class Split(NamedTuple):
    """A tax-inclusive total split into its parts; ``amount + tax == total`` always."""

    amount: Decimal  # excluding tax
    tax: Decimal
    total: Decimal  # including tax


def tax_of_inclusive(total: Decimal, rate: Decimal) -> Decimal:
    """The tax contained in a tax-inclusive ``total``: ``q2(total × r / (1 + r))``."""
    if rate < 0:
        raise ValueError("a tax rate is never negative")
    return q2(total * rate / (_ONE + rate))


def split_inclusive(total: Decimal, rate: Decimal) -> Split:
    """Split a tax-inclusive total (rounded to cents first) into amount excl. tax and tax."""
    total = q2(total)
    tax = tax_of_inclusive(total, rate)
    return Split(amount=total - tax, tax=tax, total=total)


def unit_price_excl(amount: Decimal, quantity: Decimal) -> Decimal:
    """Unit price excluding tax, 8 decimals: ``q8(amount / quantity)``."""
    if quantity == 0:
        raise ValueError("quantity must not be zero")
    return q8(amount / quantity)


def allocate(total: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """Split ``total`` (cents) over ``weights`` proportionally; the parts add up to ``total`` exactly.

    Part *i* is ``q2(T·W_i/W) − q2(T·W_{i−1}/W)`` where ``W_i`` is the running sum of the weights:
    the rounding residual of one part is carried into the next. Each part is within one cent of its
    exact share, and when ``0 ≤ total ≤ Σ weights`` with non-negative cent weights, every part lies
    between 0 and its own weight. Raises ``ValueError`` for negative weights or a zero weight sum.
    """
    total = q2(total)
    if any(w < 0 for w in weights):
        raise ValueError("weights must not be negative")
    whole = sum(weights, _ZERO)
    if whole == 0:
        raise ValueError("weights must not all be zero")
    parts: list[Decimal] = []
    running = _ZERO
    previous = _ZERO
    for weight in weights:
        running += weight
        current = q2(total * running / whole)
        parts.append(current - previous)
        previous = current
    # running == whole at the end, so the last ``current`` is q2(total) == total: exact by design.
    return parts


def line_tax_deviation(amount: Decimal, rate: Decimal, tax: Decimal) -> Decimal:
    """``|amount × rate − tax|`` (unrounded)."""
    return abs(amount * rate - tax)


def line_tax_ok(amount: Decimal, rate: Decimal, tax: Decimal, tolerance: Decimal = LINE_TAX_TOLERANCE) -> bool:
    """Per-line tolerance: ``|amount × rate − tax| ≤ 0.06``."""
    return line_tax_deviation(amount, rate, tax) <= tolerance


def price_quantity_ok(
    unit_price: Decimal,
    quantity: Decimal,
    amount: Decimal,
    tolerance: Decimal = PRICE_QUANTITY_TOLERANCE,
) -> bool:
    """``|unit price × quantity − amount| ≤ 0.01``."""
    return abs(unit_price * quantity - amount) <= tolerance


def invoice_tax_deviation(lines: Sequence[tuple[Decimal, Decimal, Decimal]]) -> Decimal:
    """``|Σ amount × rate − Σ tax|`` over ``(amount, rate, tax)`` triples."""
    expected = sum((amount * rate for amount, rate, _ in lines), _ZERO)
    actual = sum((tax for _, _, tax in lines), _ZERO)
    return abs(expected - actual)


def invoice_tax_ok(
    lines: Sequence[tuple[Decimal, Decimal, Decimal]],
    tolerance: Decimal = INVOICE_TAX_TOLERANCE,
) -> bool:
    """Invoice-level tolerance *(inferred, configurable)*: ``|Σ amount × r − Σ tax| ≤ 1.27``."""
    return invoice_tax_deviation(lines) <= tolerance


def is_cents(value: Decimal) -> bool:
    """True when ``value`` has at most two decimals (``1.5``, ``1.50``, ``1.500`` all qualify)."""
    return value.is_finite() and _places(value) <= 2


def _places(value: Decimal) -> int:
    # Digits after the point once trailing zeros are dropped, without quantize (which needs context
    # precision for very large numbers).
    sign, digits, exponent = value.as_tuple()
    del sign
    if not isinstance(exponent, int) or exponent >= 0:
        return 0
    stripped = list(digits)
    places = -exponent
    while places > 0 and stripped and stripped[-1] == 0:
        stripped.pop()
        places -= 1
    return places


def decimal_places(value: Decimal) -> int:
    """Significant decimal places of a finite Decimal (``1.50`` → 1); never raises."""
    if not value.is_finite():
        return 0
    return _places(value)
