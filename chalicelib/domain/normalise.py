"""From a verified platform event to the invoice we ask for: ``PaymentEvent`` → ``InvoiceOrder``.

:func:`normalise` builds the blue invoice for a paid order; :func:`normalise_refund` builds the red
mirror of a blue invoice for a refund. Both are pure and deterministic (same input, same order), so
a retried event yields the same invoice. Choices, also in ``docs/invoice-rules.md``:

- **Lines**: the event's lines, each classified by the store catalogue (by SKU) or the default item.
  A payment rail that sends no lines (WeChat Pay, Alipay, Stripe Checkout, 抖店) gets one line of the
  store's declared default item carrying the whole amount — minus whatever the platform labelled as
  shipping or fees. Free lines (value 0, no discount) are dropped.
- **Nothing is invented.** The lines, plus the amounts the platform itself labels (``shipping``,
  ``fees``, minus ``order_discount``), must come to exactly what was paid; otherwise the event is
  refused (``event_total_mismatch``: which lines, what they come to, the amount paid, the
  difference). Labelled shipping is one line of ``store.shipping_item`` and labelled fees (tips,
  service fees) one line of ``store.fee_item``; a store without the item refuses the order
  (``event_shipping_item_missing`` / ``event_fee_item_missing``) rather than invoicing it as the
  default item. A labelled order discount is spread over the goods lines in proportion to their
  values with residual carry, into each line's discount line (``event_order_discount_exceeds_lines``
  when it is larger than they are).
- **Unit prices**: a sent unit price must agree with quantity × the line's value before discount
  within 0.01 (``event_unit_price_mismatch``) — it is never silently re-derived. The invoice shows it
  excluding tax: as sent under tax-exclusive prices, ÷ (1 + rate) under tax-inclusive ones (falling
  back to amount ÷ quantity only when the rounding carry moved the line's amount so that
  price × quantity would miss it by more than the standard's 0.01). Lines without a sent price get
  amount ÷ quantity.
- **Names**: the catalogue item's name, else the platform's, else the code's short name (shipping and
  fee lines: their item's name, else ``运费`` / ``服务费``). The short name is the code table's when
  it knows the code, else the catalogue's.
- **Discounts** become discount lines (折扣行): the line shows the gross price, the discount line
  directly after it the reduction, so the buyer sees what was sold at what price.
- **Price basis** (``store.price_basis``): ``inclusive`` — line values include the tax (amount =
  total − tax); ``exclusive`` — they are amounts without tax, the tax is added and the invoice total
  (amount + tax) must be what was paid. An event without lines is always split tax-inclusive: the
  amount paid is its only figure and it includes the tax.
- **Tax with the rounding carried (尾差调整)**: per rate, the tax is computed once on the group's
  total (``q2(T·r/(1+r))`` or ``q2(A·r)``) and spread over the group's lines (net of their
  discounts) with :func:`~chalicelib.domain.amounts.carried_taxes`; a discount line keeps the tax of
  its own value and its goods line takes the rest. So Σ line taxes = the tax on the total per rate,
  ``|amount × rate − tax|`` stays under 0.03 on every line (the tolerance is 0.06), and orders of
  2,000 lines pass the invoice-level 1.27 whatever their prices.
- **Buyer**: no title → individual named ``个人``; a tax id → company (unless the platform says
  otherwise). Tax ids are cleaned (spaces removed, upper-cased).
- **Invoice type**: the store default, except that a special VAT invoice (专票) for a buyer without
  a tax id is issued as a normal one: a consumer order must not stall on a store-wide default.
- **Refunds**: a refund that, together with what was already reversed, covers the whole blue
  invoice mirrors the remaining lines exactly; a partial refund is spread over the blue lines (net
  of their discounts, in their original order) in proportion to what each has left, with residual
  carry, and the partly reversed lines get their taxes with the rounding carried per rate; each red
  line names its blue line (``original_line_no``). Red invoices carry no discount lines. The red
  reason is ``02`` 销货退回; the issuing service may override it and sets the blue invoice number,
  which this layer does not know.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from chalicelib.domain.amounts import allocate, is_cents
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.models import (
    EventKind,
    InvoiceColour,
    InvoiceOrder,
    InvoiceType,
    PaymentEvent,
    PriceBasis,
    RedReason,
    Store,
    Violation,
)
from chalicelib.domain.money import q2
from chalicelib.domain.normalise_labelled import (
    FEES_NAME,
    SHIPPING_NAME,
    _check_paid_event,
    _goods,
    _Labelled,
    _labelled_drafts,
    _paid_problems,
    _with_order_discount,
)
from chalicelib.domain.normalise_lines import MAX_PRICED_QUANTITY, _invoice_lines, _unit_price_problems
from chalicelib.domain.normalise_parties import INDIVIDUAL_NAME, _buyer, _remark, _seller
from chalicelib.domain.normalise_red import _mirror, _net_lines, _red_lines, _reversed_by_line
from chalicelib.domain.order_keys import order_key
from chalicelib.domain.taxcodes import TaxCodeTable
from chalicelib.domain.validation import violation

__all__ = [
    "FEES_NAME",
    "INDIVIDUAL_NAME",
    "MAX_PRICED_QUANTITY",
    "SHIPPING_NAME",
    "normalise",
    "normalise_refund",
    "order_key_for",
    "refund_event_problems",
]

_ZERO = Decimal(0)


def order_key_for(store: Store, event: PaymentEvent) -> str:
    """The ledger key of the record ``event`` makes: the paid order, or one refund of it (by refund id,
    else by event id). The intake keys its record with this, the invoice carries the same key."""
    refund_id = (event.refund_id or event.event_id) if event.kind is EventKind.REFUNDED else None
    return order_key(store.store_id, event.platform, event.order_id, refund_id)


def normalise(event: PaymentEvent, store: Store, *, table: TaxCodeTable) -> InvoiceOrder:
    """The blue invoice for a paid ``event``. Raises :class:`ValidationFailed` with every problem at
    once: unusable amounts, a labelled amount the store cannot invoice, an inconsistent unit price,
    lines that do not add up to what was paid."""
    _check_paid_event(event)
    # Without lines the amount paid is the only figure, and it includes the tax.
    inclusive = store.price_basis is PriceBasis.INCLUSIVE or not event.lines
    labelled = _Labelled(q2(event.shipping or _ZERO), q2(event.fees or _ZERO), q2(event.order_discount or _ZERO))
    goods = _goods(event, store, labelled)
    lines_value = sum((d.net for d in goods), _ZERO)
    problems = _unit_price_problems(event)
    blocking: list[Violation] = []  # what leaves an amount without a line (so no exclusive tax either)
    goods = _with_order_discount(goods, labelled.discount, blocking)
    lines = _invoice_lines(goods + _labelled_drafts(labelled, store, blocking), inclusive, table)
    problems.extend(blocking)
    if inclusive:  # what the platform's own figures come to
        expected = lines_value + labelled.shipping + labelled.fees - labelled.discount
        problems.extend(_paid_problems(event, labelled, expected, None))
    elif not blocking:  # amounts excluding tax: the invoice's total, tax included, is what was paid
        tax = sum((ln.tax for ln in lines), _ZERO)
        problems.extend(_paid_problems(event, labelled, sum((ln.total for ln in lines), _ZERO), tax))
    if problems:
        raise ValidationFailed(problems)
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
        red_lines = _red_lines(net, allocate(refund, left))
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
