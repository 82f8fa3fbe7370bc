"""What the platform labels outside its lines, and the check that everything adds up to what was paid.

Owns the paid event's up-front checks, the goods drafts (or the default-item line for a payment
rail that sends no lines), the labelled amounts (``shipping`` and ``fees`` as lines of the store's
own items, ``order_discount`` spread over the goods lines with residual carry) and the total check
(``event_total_mismatch`` with its breakdown). See :mod:`chalicelib.domain.normalise` for the rules.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from chalicelib.domain.amounts import allocate
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.models import EventKind, PaymentEvent, Store, Violation
from chalicelib.domain.money import q2
from chalicelib.domain.normalise_lines import _Draft, _draft
from chalicelib.domain.validation import violation

#: Goods names of the shipping and fee lines when the store's item for them names none.
SHIPPING_NAME = "运费"
FEES_NAME = "服务费"
_ZERO = Decimal(0)


@dataclass(frozen=True)
class _Labelled:
    """What the platform labels outside its lines, in cents (0 when it did not say)."""

    shipping: Decimal
    fees: Decimal
    discount: Decimal


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
