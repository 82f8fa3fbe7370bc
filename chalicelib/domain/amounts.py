"""Tax arithmetic: splitting tax-inclusive money, allocating totals with residual carry, tolerances.

Everything is ``Decimal`` and every rounding is ROUND_HALF_UP (through :func:`~.money.q2` /
:func:`~.money.q8`). The rules come from ``tax-rules.md``:

- tax-inclusive split: ``tax = q2(total × r / (1 + r))``, ``amount = total − tax`` (so amount + tax
  is the total exactly, for positive and negative totals alike — HALF_UP is symmetric around zero);
- tax-exclusive: ``tax = q2(amount × r)``, ``total = amount + tax``;
- unit price excluding tax: up to 8 decimals;
- per line ``|amount × r − tax| ≤ 0.06`` (Nuonuo E9131) and ``|price × quantity − amount| ≤ 0.01``;
- per invoice ``|Σ amount × r − Σ tax| ≤ 1.27`` — *inferred*: seen in several codebases, in no
  official text, hence a parameter.

:func:`allocate` spreads a total over weights so that the rounded parts add up to the total exactly
(cumulative rounding: each part is the difference of two rounded running sums, which is the
"residual carry" technique); it is used for order-level discounts and partial refunds.

:func:`carried_taxes` is the rounding carry of the tax itself (尾差调整): the tax is computed once on
the total of a rate group and allocated over the group's lines, so the line taxes add up to the tax
on the total exactly instead of drifting one rounding per line (227 lines of ¥1.00 at 13 % drift
past the invoice tolerance when each line is rounded alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from typing import NamedTuple

from chalicelib.domain.money import CENT, ZERO, q2, q8

LINE_TAX_TOLERANCE = Decimal("0.06")
PRICE_QUANTITY_TOLERANCE = Decimal("0.01")
#: *(inferred)* no official source; callers may pass their own.
INVOICE_TAX_TOLERANCE = Decimal("1.27")

_ONE = Decimal(1)
_ZERO = Decimal(0)
#: Enough digits for 2,000 lines of 10¹² yuan multiplied together without an inexact intermediate.
_WIDE = Context(prec=60, rounding=ROUND_HALF_UP)


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


def tax_of_exclusive(amount: Decimal, rate: Decimal) -> Decimal:
    """The tax on an ``amount`` excluding tax: ``q2(amount × r)``."""
    if rate < 0:
        raise ValueError("a tax rate is never negative")
    return q2(amount * rate)


def tax_on(value: Decimal, rate: Decimal, *, inclusive: bool) -> Decimal:
    """The tax of ``value``: contained in it (``inclusive``, a total) or added to it (an amount)."""
    return tax_of_inclusive(value, rate) if inclusive else tax_of_exclusive(value, rate)


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
    with localcontext(_WIDE):
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


def carried_taxes(values: Sequence[Decimal], rate: Decimal, *, inclusive: bool) -> list[Decimal]:
    """The taxes of lines of one rate, with the rounding carried (尾差调整): they add up to the tax on
    the lines' total.

    ``values`` are the lines' cent values, all of one sign: totals including tax (``inclusive``) or
    amounts excluding tax. The tax on their sum (:func:`tax_on`) is spread over them in proportion
    to the values with :func:`allocate`. Each tax is within 1.5 cents of the line's exact tax
    (``v·r/(1+r)`` or ``v·r``) — so ``|amount × r − tax|`` stays below 0.02, far inside the 0.06 line
    tolerance —, has the line's sign and leaves the line an amount (``v − tax``, inclusive) of at
    least a cent; a zero value gets no tax.

    Only one-cent lines can meet that last limit: the carry could hand one of them its whole cent as
    tax. That cent goes instead to the line furthest below its exact tax that can take it within the
    1.5 cents, and when no line can, the taxes fall that cent short of the tax on the total (a group
    of one-cent lines cannot carry its tax; the invoice-level tolerance then judges it, as the
    platform would). Raises ``ValueError`` for values of both signs.
    """
    cents = [q2(v) for v in values]
    if any(v < 0 for v in cents) and any(v > 0 for v in cents):
        raise ValueError("values of one rate group must all have the same sign")
    total = sum(cents, _ZERO)
    if total == 0:
        return [ZERO for _ in cents]
    weights = [abs(v) for v in cents]
    parts = allocate(abs(tax_on(total, rate, inclusive=inclusive)), weights)
    if inclusive:
        parts = _leave_an_amount(parts, weights, rate)
    return parts if total > 0 else [_ZERO - p for p in parts]


_CARRY_BOUND = Decimal("0.015")


def _leave_an_amount(parts: list[Decimal], weights: list[Decimal], rate: Decimal) -> list[Decimal]:
    """``parts`` capped at their weight minus a cent, the cents taken off moved (one per line) to the
    lines most below their exact tax that can take one within :data:`_CARRY_BOUND` of it."""
    caps = [max(w - CENT, ZERO) for w in weights]
    excess = sum((p - c for p, c in zip(parts, caps, strict=True) if p > c), _ZERO)
    if excess == 0:
        return parts
    capped = [min(p, c) for p, c in zip(parts, caps, strict=True)]
    share = rate / (_ONE + rate)
    with localcontext(_WIDE):
        exact = [w * share for w in weights]
    for i in sorted(range(len(capped)), key=lambda i: capped[i] - exact[i]):
        if excess == 0:
            break
        if capped[i] + CENT <= caps[i] and capped[i] + CENT - exact[i] <= _CARRY_BOUND:
            capped[i] += CENT
            excess -= CENT
    return capped


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
