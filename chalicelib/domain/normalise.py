"""From a verified platform event to the invoice we ask for: ``PaymentEvent`` → ``InvoiceOrder``.

:func:`normalise` builds the blue invoice for a paid order; :func:`normalise_refund` builds the red
mirror of a blue invoice for a refund. Both are pure and deterministic (same input, same order), so
a retried event yields the same invoice. Choices, also in ``docs/invoice-rules.md``:

- **Lines**: the event's lines, each classified by the store catalogue (by SKU) or the default item;
  no lines (payment rails) → one line from the default item carrying the whole amount. Free lines
  (total 0, no discount) are dropped.
- **Names**: the catalogue item's name, else the platform's, else the code's short name. The short
  name is the code table's when it knows the code, else the catalogue's.
- **Discounts** become discount lines (折扣行): the line shows the gross price, the discount line
  directly after it the reduction, so the buyer sees what was sold at what price.
- **Reconciliation** when the lines do not add up to the amount paid: a shortfall (shipping, fees)
  becomes an extra line ``运费`` classified by the default item; an excess (an order-level coupon) is
  spread over the lines in proportion to their totals with residual carry and added to each line's
  discount line (still one per line).
- **Buyer**: no title → individual named ``个人``; a tax id → company (unless the platform says
  otherwise). Tax ids are cleaned (spaces removed, upper-cased).
- **Invoice type**: the store default, except that a special VAT invoice (专票) for a buyer without
  a tax id is issued as a normal one: a consumer order must not stall on a store-wide default.
- **Refunds**: a refund that, together with what was already reversed, covers the whole blue
  invoice mirrors the remaining lines exactly; a partial refund is spread over the blue lines (net
  of their discounts, in their original order) in proportion to what each has left, with residual
  carry; each red line names its blue line (``original_line_no``). Red invoices carry no discount
  lines. The red reason is ``02`` 销货退回; the issuing service may override it and sets the blue
  invoice number, which this layer does not know.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from chalicelib.domain.amounts import allocate, is_cents, split_inclusive, unit_price_excl
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.models import (
    BuyerType,
    CatalogueItem,
    EventKind,
    EventLine,
    InvoiceBuyer,
    InvoiceColour,
    InvoiceLine,
    InvoiceOrder,
    InvoiceType,
    Party,
    PaymentEvent,
    RedReason,
    Store,
    Violation,
)
from chalicelib.domain.money import q2, q8
from chalicelib.domain.order_state import order_key
from chalicelib.domain.taxcodes import TaxCodeTable
from chalicelib.domain.taxpayer import clean_tax_id
from chalicelib.domain.validation import violation

INDIVIDUAL_NAME = "个人"
SHIPPING_NAME = "运费"
#: Above this quantity the 8-decimal unit price could miss price × quantity = amount by > 0.01.
MAX_PRICED_QUANTITY = Decimal(1_000_000)
_ZERO = Decimal(0)


def order_key_for(store: Store, event: PaymentEvent) -> str:
    """The ledger key of the record ``event`` makes: the paid order, or one refund of it (by refund id,
    else by event id). The intake keys its record with this, the invoice carries the same key."""
    refund_id = (event.refund_id or event.event_id) if event.kind is EventKind.REFUNDED else None
    return order_key(store.store_id, event.platform, event.order_id, refund_id)


# --- blue ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Draft:
    """One goods line before discounts are split: tax-inclusive gross total and discount."""

    item: CatalogueItem
    name: str
    sku: str | None
    quantity: Decimal | None
    gross: Decimal  # incl. tax, before discount
    discount: Decimal  # incl. tax, positive


def normalise(event: PaymentEvent, store: Store, *, table: TaxCodeTable) -> InvoiceOrder:
    """The blue invoice for a paid ``event`` (raises :class:`ValidationFailed` for unusable events)."""
    _check_paid_event(event)
    drafts = _drafts(event, store)
    lines: list[InvoiceLine] = []
    for draft in drafts:
        lines.extend(_lines_for(draft, table))
    buyer = _buyer(event)
    invoice_type = store.invoice_defaults.invoice_type
    if invoice_type is InvoiceType.SPECIAL and not buyer.tax_id:
        invoice_type = InvoiceType.NORMAL
    defaults = store.invoice_defaults
    return InvoiceOrder(
        order_key=order_key_for(store, event),
        store_id=store.store_id,
        order_id=event.order_id,
        colour=InvoiceColour.BLUE,
        invoice_type=invoice_type,
        seller=_seller(store),
        buyer=buyer,
        lines=tuple(lines),
        total_amount=sum((ln.amount for ln in lines), _ZERO),
        total_tax=sum((ln.tax for ln in lines), _ZERO),
        total=sum((ln.total for ln in lines), _ZERO),
        issuer=defaults.issuer,
        reviewer=defaults.reviewer,
        payee=defaults.payee,
        remark=_remark(defaults.remark_template, event, store),
    )


def refund_event_problems(event: PaymentEvent) -> list[Violation]:
    """What makes a refund event unusable at intake, before the blue invoice is known."""
    amount = event.refund_amount
    if amount is None:
        return [violation("refund_amount", "refund_amount_missing")]
    problems = []
    if amount <= 0:
        problems.append(violation("refund_amount", "refund_amount_not_positive"))
    if not is_cents(amount):
        problems.append(violation("refund_amount", "money_precision"))
    if event.amount > 0 and amount > event.amount:
        problems.append(violation("refund_amount", "refund_exceeds_payment"))
    return problems


def _check_paid_event(event: PaymentEvent) -> None:
    problems = []
    if event.kind is not EventKind.PAID:
        problems.append(violation("kind", "event_not_paid"))
    if event.currency != "CNY":
        problems.append(violation("currency", "event_currency", currency=event.currency))
    if q2(event.amount) <= 0:
        problems.append(violation("amount", "event_amount_not_positive"))
    for index, line in enumerate(event.lines):
        if line.total < 0 or line.discount < 0:
            problems.append(violation(f"lines[{index}].total", "event_line_negative"))
    if problems:
        raise ValidationFailed(problems)


def _drafts(event: PaymentEvent, store: Store) -> list[_Draft]:
    amount = q2(event.amount)
    drafts = [_draft(line, store) for line in event.lines]
    drafts = [d for d in drafts if d.gross > 0]
    if not drafts:
        item = store.default_item
        return [_Draft(item, item.name or item.short_name, None, Decimal(1), amount, _ZERO)]
    net = [d.gross - d.discount for d in drafts]
    difference = amount - sum(net, _ZERO)
    if difference > 0:
        item = store.default_item
        drafts.append(_Draft(item, SHIPPING_NAME, None, Decimal(1), difference, _ZERO))
    elif difference < 0:
        # amount > 0 was checked, so Σ net > amount > 0: the weights cannot all be zero.
        extra = allocate(-difference, net)
        drafts = [
            _Draft(d.item, d.name, d.sku, d.quantity, d.gross, d.discount + share)
            for d, share in zip(drafts, extra, strict=True)
        ]
    return drafts


def _draft(line: EventLine, store: Store) -> _Draft:
    item = store.catalogue_item(line.sku)
    name = item.name or line.name or item.short_name
    total = q2(line.total)
    discount = q2(line.discount)
    quantity: Decimal | None = q8(line.quantity) if 0 < line.quantity <= MAX_PRICED_QUANTITY else None
    if quantity is not None and quantity <= 0:
        quantity = None  # smaller than 8 decimals can say: invoice by amount only
    return _Draft(item, name, line.sku, quantity, total + discount, discount)


def _lines_for(draft: _Draft, table: TaxCodeTable) -> list[InvoiceLine]:
    item = draft.item
    short_name = table.short_name(item.tax_code) or item.short_name
    gross = split_inclusive(draft.gross, item.tax_rate)
    quantity = draft.quantity
    unit_price = unit_price_excl(gross.amount, quantity) if quantity is not None else None
    common = {
        "name": draft.name,
        "short_name": short_name,
        "tax_code": item.tax_code,
        "tax_rate": item.tax_rate,
        "sku": draft.sku,
        "zero_rate_flag": item.zero_rate_flag if item.tax_rate == 0 else None,
    }
    lines = [
        InvoiceLine(
            **common,
            quantity=quantity,
            unit=item.unit,
            unit_price=unit_price,
            amount=gross.amount,
            tax=gross.tax,
            total=gross.total,
            specification=item.specification,
        )
    ]
    if draft.discount > 0:
        cut = split_inclusive(-draft.discount, item.tax_rate)
        lines.append(InvoiceLine(**common, amount=cut.amount, tax=cut.tax, total=cut.total, is_discount=True))
    return lines


def _buyer(event: PaymentEvent) -> InvoiceBuyer:
    source = event.buyer
    if source is None:
        return InvoiceBuyer(name=INDIVIDUAL_NAME, type=BuyerType.INDIVIDUAL)
    tax_id = clean_tax_id(source.tax_id) if source.tax_id else None
    tax_id = tax_id or None
    inferred = BuyerType.COMPANY if tax_id else BuyerType.INDIVIDUAL
    kind = source.type if source.type is not None else inferred
    name = source.title or ("" if kind is BuyerType.COMPANY else INDIVIDUAL_NAME)
    return InvoiceBuyer(
        name=name,
        tax_id=tax_id,
        type=kind,
        address=source.address,
        phone=source.phone,
        bank=source.bank,
        account=source.account,
        email=source.email,
        mobile=source.mobile,
    )


def _seller(store: Store) -> Party:
    s = store.seller
    return Party(
        name=s.name,
        tax_id=s.tax_id,
        address=s.address or None,
        phone=s.phone or None,
        bank=s.bank or None,
        account=s.account or None,
    )


class _Fields(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _remark(template: str | None, event: PaymentEvent, store: Store) -> str | None:
    if not template:
        return None
    fields = _Fields(
        order_id=event.order_id,
        store_id=store.store_id,
        platform=event.platform,
        event_id=event.event_id,
        refund_id=event.refund_id or "",
    )
    try:
        return template.format_map(fields)
    except (ValueError, IndexError, AttributeError, KeyError):
        # A template with a stray brace or an attribute lookup is the merchant's text: keep it as is.
        return template


# --- red -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _NetLine:
    """A blue goods line with its discount line netted in (red invoices carry no discount lines)."""

    line_no: int  # 1-based position of the goods line in the blue invoice
    line: InvoiceLine
    amount: Decimal
    tax: Decimal
    total: Decimal


def normalise_refund(
    event: PaymentEvent,
    store: Store,
    blue: InvoiceOrder,
    *,
    already_reversed: Decimal,
    previous_reds: Sequence[InvoiceOrder] = (),
) -> InvoiceOrder:
    """The red invoice for a refund of ``blue``.

    ``already_reversed`` is the positive sum of the red invoices already issued against ``blue``.
    When ``previous_reds`` (those red invoices) are given, each blue line's remaining amount is known
    exactly; otherwise earlier partial refunds are assumed to have been spread the same proportional
    way. The refund is ``event.refund_amount`` or, when absent, everything not yet reversed.
    """
    if event.kind is not EventKind.REFUNDED:
        raise ValidationFailed([violation("kind", "event_not_refund")])
    if blue.colour is not InvoiceColour.BLUE:
        raise ValidationFailed([violation("colour", "refund_source_not_blue")])
    already = q2(already_reversed)
    remaining_total = blue.total - already
    refund = q2(event.refund_amount) if event.refund_amount is not None else remaining_total
    if refund <= 0:
        raise ValidationFailed([violation("refund_amount", "refund_amount_not_positive")])
    if already < 0 or refund > remaining_total:
        raise ValidationFailed(
            [violation("refund_amount", "refund_exceeds_invoice", reversed=already, refund=refund, total=blue.total)]
        )
    net = _net_lines(blue)
    reversed_by_line = _reversed_by_line(net, already, previous_reds)
    left = [n.total - reversed_by_line[n.line_no] for n in net]
    if refund == sum(left, _ZERO) and all(v == 0 for v in reversed_by_line.values()):
        red_lines = [_mirror(n) for n in net]
    else:
        shares = allocate(refund, left)
        red_lines = [
            _mirror(n) if share == n.total else _partial(n, share)
            for n, share in zip(net, shares, strict=True)
            if share > 0
        ]
    return InvoiceOrder(
        order_key=order_key_for(store, event),
        store_id=store.store_id,
        order_id=blue.order_id,
        colour=InvoiceColour.RED,
        invoice_type=blue.invoice_type,
        seller=blue.seller,
        buyer=blue.buyer,
        lines=tuple(red_lines),
        total_amount=sum((ln.amount for ln in red_lines), _ZERO),
        total_tax=sum((ln.tax for ln in red_lines), _ZERO),
        total=sum((ln.total for ln in red_lines), _ZERO),
        issuer=blue.issuer,
        reviewer=blue.reviewer,
        payee=blue.payee,
        red_reason=RedReason.RETURN,
    )


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


def _partial(n: _NetLine, share: Decimal) -> InvoiceLine:
    """Part of a blue line reversed by amount only (no quantity: the platform accepts amount-only lines)."""
    split = split_inclusive(-share, n.line.tax_rate)
    return n.line.model_copy(
        update={
            "quantity": None,
            "unit_price": None,
            "amount": split.amount,
            "tax": split.tax,
            "total": split.total,
            "is_discount": False,
            "original_line_no": n.line_no,
        }
    )
