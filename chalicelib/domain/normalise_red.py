"""The red mirror of a blue invoice for a refund: netting, what is left per line, the red lines.

Owns netting the blue goods lines with their discount lines (red invoices carry no discount
lines), what each blue line has already had reversed (from the previous red invoices or estimated
proportionally), the exact mirror of a line reversed whole, and the amount-only lines of a partial
refund with their taxes carried per rate. :func:`chalicelib.domain.normalise.normalise_refund` is
the entry point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from chalicelib.domain.amounts import allocate, unit_price_excl
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.models import InvoiceLine, InvoiceOrder
from chalicelib.domain.normalise_lines import _group_taxes
from chalicelib.domain.validation import violation

_ZERO = Decimal(0)


@dataclass(frozen=True)
class _NetLine:
    """A blue goods line with its discount line netted in (red invoices carry no discount lines)."""

    line_no: int  # 1-based position of the goods line in the blue invoice
    line: InvoiceLine
    amount: Decimal
    tax: Decimal
    total: Decimal


def _net_lines(blue: InvoiceOrder) -> list[_NetLine]:
    net: list[_NetLine] = []
    for index, line in enumerate(blue.lines):
        if line.is_discount and net:
            last = net[-1]
            net[-1] = _NetLine(
                last.line_no,
                last.line,
                last.amount + line.amount,
                last.tax + line.tax,
                last.total + line.total,
            )
        elif not line.is_discount:
            net.append(_NetLine(index + 1, line, line.amount, line.tax, line.total))
    # Fully discounted lines have nothing left to reverse.
    return [n for n in net if n.total > 0]


def _reversed_by_line(
    net: list[_NetLine], already: Decimal, previous_reds: Sequence[InvoiceOrder]
) -> dict[int, Decimal]:
    if previous_reds:
        done = {n.line_no: _ZERO for n in net}
        for red in previous_reds:
            for line in red.lines:
                if line.original_line_no in done:
                    done[line.original_line_no] -= line.total
        total_done = sum(done.values(), _ZERO)
        if total_done != already:
            raise ValidationFailed(
                [violation("already_reversed", "refund_ledger_mismatch", sum=total_done, reversed=already)]
            )
        return done
    if already == 0:
        return {n.line_no: _ZERO for n in net}
    # Earlier partial refunds were spread proportionally over the line totals: reproduce that.
    estimate = allocate(already, [n.total for n in net])
    return {n.line_no: share for n, share in zip(net, estimate, strict=True)}


def _mirror(n: _NetLine) -> InvoiceLine:
    """The exact negative of a (netted) blue line: same split, same quantity."""
    line = n.line
    quantity = -line.quantity if line.quantity is not None else None
    unit_price = line.unit_price
    if quantity is not None and n.amount != line.amount:
        unit_price = unit_price_excl(n.amount, line.quantity or Decimal(1))
    return line.model_copy(
        update={
            "quantity": quantity,
            "unit_price": unit_price if quantity is not None else None,
            "amount": -n.amount,
            "tax": -n.tax,
            "total": -n.total,
            "is_discount": False,
            "original_line_no": n.line_no,
        }
    )


def _red_lines(net: list[_NetLine], shares: list[Decimal]) -> list[InvoiceLine]:
    """A blue line reversed whole is mirrored; the partly reversed ones get their taxes with the
    rounding carried per rate (their taxes add up to the tax on their total)."""
    partial = [(n, share) for n, share in zip(net, shares, strict=True) if 0 < share != n.total]
    taxes = iter(_group_taxes([(n.line.tax_rate, -share) for n, share in partial], inclusive=True))
    return [
        _mirror(n) if share == n.total else _partial(n, share, next(taxes))
        for n, share in zip(net, shares, strict=True)
        if share > 0
    ]


def _partial(n: _NetLine, share: Decimal, tax: Decimal) -> InvoiceLine:
    """Part of a blue line reversed by amount only (no quantity: the platform accepts amount-only
    lines); ``tax`` is its (negative) carried tax."""
    return n.line.model_copy(
        update={
            "quantity": None,
            "unit_price": None,
            "amount": -share - tax,
            "tax": tax,
            "total": -share,
            "is_discount": False,
            "original_line_no": n.line_no,
        }
    )
