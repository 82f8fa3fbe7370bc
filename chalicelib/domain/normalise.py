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
from dataclasses import dataclass, replace
from decimal import Decimal

from chalicelib.domain.amounts import (
    Split,
    allocate,
    carried_taxes,
    is_cents,
    price_quantity_ok,
    tax_on,
    unit_price_excl,
)
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
    PriceBasis,
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
#: Goods names of the shipping and fee lines when the store's item for them names none.
SHIPPING_NAME = "运费"
FEES_NAME = "服务费"
#: Above this quantity the 8-decimal unit price could miss price × quantity = amount by > 0.01.
MAX_PRICED_QUANTITY = Decimal(1_000_000)
_ZERO = Decimal(0)
_ONE = Decimal(1)


def order_key_for(store: Store, event: PaymentEvent) -> str:
    """The ledger key of the record ``event`` makes: the paid order, or one refund of it (by refund id,
    else by event id). The intake keys its record with this, the invoice carries the same key."""
    refund_id = (event.refund_id or event.event_id) if event.kind is EventKind.REFUNDED else None
    return order_key(store.store_id, event.platform, event.order_id, refund_id)


# --- blue ----------------------------------------------------------------------------------------
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


@dataclass(frozen=True)
class _Labelled:
    """What the platform labels outside its lines, in cents (0 when it did not say)."""

    shipping: Decimal
    fees: Decimal
    discount: Decimal


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


#: The amounts a platform labels outside its lines: event field → (中文, English).
_LABELS = {
    "shipping": ("运费", "shipping"),
    "fees": ("小费或服务费", "tips or fees"),
    "order_discount": ("订单优惠", "order discount"),
}


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
    for field, (zh, en) in _LABELS.items():
        value: Decimal | None = getattr(event, field)
        if value is not None and value < 0:
            problems.append(violation(field, "event_labelled_negative", what=zh, what_en=en))
    if problems:
        raise ValidationFailed(problems)


def _goods(event: PaymentEvent, store: Store, labelled: _Labelled) -> list[_Draft]:
    """The event's lines (free ones dropped) or, for a payment rail that sends none, one line of the
    store's default item carrying what the platform did not label otherwise."""
    if event.lines:
        return [d for d in (_draft(line, store) for line in event.lines) if d.gross > 0]
    rest = q2(event.amount) - labelled.shipping - labelled.fees + labelled.discount
    if rest <= 0:
        return []  # the labelled amounts exceed the payment: reported by the total check
    item = store.default_item
    return [_Draft(item, item.name or item.short_name, None, Decimal(1), None, rest)]


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


def _with_order_discount(goods: list[_Draft], discount: Decimal, problems: list[Violation]) -> list[_Draft]:
    """The platform's order-level discount spread over the goods lines in proportion to what each
    still costs, with residual carry, into each line's discount (one discount line per line)."""
    if discount <= 0:
        return goods
    value = sum((d.net for d in goods), _ZERO)
    if discount > value:
        problems.append(
            violation("order_discount", "event_order_discount_exceeds_lines", discount=discount, lines=value)
        )
        return goods
    shares = allocate(discount, [d.net for d in goods])
    return [replace(d, discount=d.discount + share) for d, share in zip(goods, shares, strict=True)]


def _labelled_drafts(labelled: _Labelled, store: Store, problems: list[Violation]) -> list[_Draft]:
    """Shipping and fees as lines of the store's own items for them; refused when it has none."""
    drafts: list[_Draft] = []
    for value, item, name, field, code in (
        (labelled.shipping, store.shipping_item, SHIPPING_NAME, "shipping", "event_shipping_item_missing"),
        (labelled.fees, store.fee_item, FEES_NAME, "fees", "event_fee_item_missing"),
    ):
        if value <= 0:
            continue
        if item is None:
            problems.append(violation(field, code, **{field: value}))
            continue
        drafts.append(_Draft(item, item.name or name, None, Decimal(1), None, value))
    return drafts


def _paid_problems(event: PaymentEvent, labelled: _Labelled, expected: Decimal, tax: Decimal | None) -> list[Violation]:
    """The lines, plus what the platform labels (plus the ``tax`` when prices exclude it), must come
    to exactly what was paid; nothing is made up to close a gap."""
    paid = q2(event.amount)
    if expected == paid:
        return []
    zh, en = _breakdown(event, labelled, tax)
    return [
        violation(
            "amount",
            "event_total_mismatch",
            breakdown=zh,
            breakdown_en=en,
            expected=expected,
            amount=paid,
            difference=paid - expected,
        )
    ]


_LISTED_LINES = 5


def _breakdown(event: PaymentEvent, labelled: _Labelled, tax: Decimal | None) -> tuple[str, str]:
    """Which lines and labelled amounts made up the expected total, in Chinese and in English."""
    values = [q2(line.total) for line in event.lines]
    if not values:
        zh, en = ["明细（无）"], ["no lines"]
    elif len(values) <= _LISTED_LINES:
        listed = [f"lines[{i}] {v}" for i, v in enumerate(values)]
        zh, en = ["明细 " + "、".join(listed)], [", ".join(listed)]
    else:
        whole = sum(values, _ZERO)
        span = f"lines[0]–lines[{len(values) - 1}]"
        zh, en = [f"明细 {span}（{len(values)}行）合计 {whole}"], [f"{span} ({len(values)} lines) totalling {whole}"]
    for value, (label_zh, label_en), minus in (
        (labelled.shipping, _LABELS["shipping"], False),
        (labelled.fees, _LABELS["fees"], False),
        (labelled.discount, _LABELS["order_discount"], True),
        (tax, ("税额", "tax"), False),
    ):
        if value:
            zh.append(f"{'－' if minus else '＋'}{label_zh} {value}")
            en.append(f"{'−' if minus else '+'} {label_en} {value}")
    return " ".join(zh), " ".join(en)


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
