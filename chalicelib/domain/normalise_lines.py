"""The blue invoice's lines: drafts, unit prices and taxes with the rounding carried.

Owns :class:`_Draft` (a line before its tax is known), turning an event line into a draft, the
check of sent unit prices against quantity × value, and turning drafts into invoice lines — the
goods line at its gross value, its discount line (折扣行), the unit price excluding tax, and the
per-rate tax carry (尾差调整, :func:`_group_taxes`, also used by the red mirror). See
:mod:`chalicelib.domain.normalise` for the rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from chalicelib.domain.amounts import Split, carried_taxes, price_quantity_ok, tax_on, unit_price_excl
from chalicelib.domain.models import CatalogueItem, EventLine, InvoiceLine, PaymentEvent, Store, Violation
from chalicelib.domain.money import q2, q8
from chalicelib.domain.taxcodes import TaxCodeTable
from chalicelib.domain.validation import violation

#: Above this quantity the 8-decimal unit price could miss price × quantity = amount by > 0.01.
MAX_PRICED_QUANTITY = Decimal(1_000_000)
_ZERO = Decimal(0)
_ONE = Decimal(1)


@dataclass(frozen=True)
class _Draft:
    """One line before its tax is known, in the basis it is split in (tax-inclusive totals, or
    amounts excluding tax): its gross value before discount and its discount (positive)."""

    item: CatalogueItem
    name: str
    sku: str | None
    quantity: Decimal | None
    unit_price: Decimal | None  # as the platform sent it (same basis); checked against quantity × gross
    gross: Decimal
    discount: Decimal = _ZERO

    @property
    def net(self) -> Decimal:
        return self.gross - self.discount


def _draft(line: EventLine, store: Store) -> _Draft:
    item = store.catalogue_item(line.sku)
    name = item.name or line.name or item.short_name
    total = q2(line.total)
    discount = q2(line.discount)
    quantity: Decimal | None = q8(line.quantity) if 0 < line.quantity <= MAX_PRICED_QUANTITY else None
    if quantity is not None and quantity <= 0:
        quantity = None  # smaller than 8 decimals can say: invoice by amount only
    unit_price = line.unit_price if quantity is not None else None
    return _Draft(item, name, line.sku, quantity, unit_price, total + discount, discount)


def _unit_price_problems(event: PaymentEvent) -> list[Violation]:
    """A sent unit price must agree with quantity × the line's value before discount, within the
    0.01 the standard allows; it is never re-derived from the total."""
    problems: list[Violation] = []
    for index, line in enumerate(event.lines):
        gross = q2(line.total) + q2(line.discount)
        price, quantity = line.unit_price, line.quantity
        if price is None or gross <= 0 or not 0 < quantity <= MAX_PRICED_QUANTITY:
            continue  # free lines are not invoiced; huge quantities are invoiced by amount only
        if not price_quantity_ok(price, quantity, gross):
            product = price * quantity
            problems.append(
                violation(
                    f"lines[{index}].unit_price",
                    "event_unit_price_mismatch",
                    price=price,
                    quantity=quantity,
                    product=product,
                    gross=gross,
                    difference=product - gross,
                )
            )
    return problems


def _invoice_lines(drafts: list[_Draft], inclusive: bool, table: TaxCodeTable) -> list[InvoiceLine]:
    taxes = _group_taxes([(d.item.tax_rate, d.net) for d in drafts], inclusive=inclusive)
    lines: list[InvoiceLine] = []
    for draft, tax in zip(drafts, taxes, strict=True):
        lines.extend(_lines_for(draft, tax, inclusive, table))
    return lines


def _group_taxes(lines: Sequence[tuple[Decimal, Decimal]], *, inclusive: bool) -> list[Decimal]:
    """The tax of each ``(rate, value)`` line with the rounding carried per rate group (尾差调整):
    per rate, the taxes add up to the tax on the group's total."""
    groups: dict[Decimal, list[int]] = {}
    for index, (rate, _) in enumerate(lines):
        groups.setdefault(rate, []).append(index)
    taxes = [_ZERO] * len(lines)
    for rate, members in groups.items():
        carried = carried_taxes([lines[i][1] for i in members], rate, inclusive=inclusive)
        for index, tax in zip(members, carried, strict=True):
            taxes[index] = tax
    return taxes


def _lines_for(draft: _Draft, net_tax: Decimal, inclusive: bool, table: TaxCodeTable) -> list[InvoiceLine]:
    """The goods line (at its gross value) and its discount line. The discount line's tax is the
    discount's own; the goods line takes the carried tax of the net plus that, so the pair still
    comes to the net's carried tax."""
    item = draft.item
    rate = item.tax_rate
    cut_tax = tax_on(draft.discount, rate, inclusive=inclusive)
    goods_tax = net_tax + cut_tax
    if inclusive:
        goods = Split(amount=draft.gross - goods_tax, tax=goods_tax, total=draft.gross)
        cut = Split(amount=cut_tax - draft.discount, tax=_ZERO - cut_tax, total=_ZERO - draft.discount)
    else:
        goods = Split(amount=draft.gross, tax=goods_tax, total=draft.gross + goods_tax)
        cut = Split(amount=_ZERO - draft.discount, tax=_ZERO - cut_tax, total=_ZERO - draft.discount - cut_tax)
    common = {
        "name": draft.name,
        "short_name": table.short_name(item.tax_code) or item.short_name,
        "tax_code": item.tax_code,
        "tax_rate": rate,
        "sku": draft.sku,
        "zero_rate_flag": item.zero_rate_flag if rate == 0 else None,
    }
    lines = [
        InvoiceLine(
            **common,
            quantity=draft.quantity,
            unit=item.unit,
            unit_price=_unit_price(draft, goods.amount, inclusive),
            amount=goods.amount,
            tax=goods.tax,
            total=goods.total,
            specification=item.specification,
        )
    ]
    if draft.discount > 0:
        lines.append(InvoiceLine(**common, amount=cut.amount, tax=cut.tax, total=cut.total, is_discount=True))
    return lines


def _unit_price(draft: _Draft, amount: Decimal, inclusive: bool) -> Decimal | None:
    """The unit price excluding tax: the sent one (÷ (1 + r) when it included the tax) while it
    meets price × quantity = amount ± 0.01; otherwise, and when none was sent, amount ÷ quantity."""
    quantity = draft.quantity
    if quantity is None:
        return None
    sent = draft.unit_price
    if sent is not None:
        kept = q8(sent / (_ONE + draft.item.tax_rate)) if inclusive else q8(sent)
        if price_quantity_ok(kept, quantity, amount):
            return kept
    return unit_price_excl(amount, quantity)
