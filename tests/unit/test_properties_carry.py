"""Property tests of the rounding carry (尾差调整) over whole orders, in both price bases.

For random orders (random mixes of rates, prices, quantities with the unit prices the platform sent,
line discounts, a labelled order discount and labelled shipping): the invoice is valid, every line
adds up (amount + tax = total) and stays within its 0.06, and per rate Σ line taxes is the tax on the
group's total (a one-cent line, whose amount must stay above zero, may leave that cent untaxed).
Random orders stay small (≤ 120 lines) to keep the file fast; the 2,000-line end is an
explicit example per basis.
"""

from __future__ import annotations

import random
from collections import defaultdict
from decimal import Decimal as D

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from chalicelib.domain.amounts import LINE_TAX_TOLERANCE, allocate, tax_on
from chalicelib.domain.models import EventKind, EventLine, InvoiceOrder, PaymentEvent, PriceBasis
from chalicelib.domain.money import q2
from chalicelib.domain.normalise import normalise
from chalicelib.domain.validation import check
from tests.unit.test_normalise import CAKE, RICE, SOFTWARE, TABLE, TRANSPORT, make_store

ITEMS = {
    "r13": CAKE,
    "r09": RICE,
    "r06": SOFTWARE,
    "r03": CAKE.model_copy(update={"tax_rate": D("0.03")}),
    "r01": RICE.model_copy(update={"tax_rate": D("0.01")}),
}
STORES = {basis: make_store(catalogue=ITEMS, price_basis=basis, shipping_item=TRANSPORT) for basis in PriceBasis}


def _line(sku: str, quantity: int, price_cents: int, discount_cents: int) -> EventLine:
    price = D(price_cents) / 100
    gross = price * quantity
    discount = min(D(discount_cents) / 100, gross - D("0.01"))
    return EventLine(sku=sku, quantity=D(quantity), unit_price=price, total=gross - discount, discount=discount)


lines_strategy = st.lists(
    st.builds(
        _line,
        sku=st.sampled_from(sorted(ITEMS)),
        quantity=st.sampled_from([1, 1, 2, 3, 7]),
        price_cents=st.one_of(st.integers(min_value=1, max_value=300), st.integers(min_value=1, max_value=2_000_000)),
        discount_cents=st.one_of(st.just(0), st.integers(min_value=1, max_value=5_000)),
    ),
    min_size=1,
    max_size=120,
)  # ≤ 120 event lines, so ≤ 241 invoice lines


def paid_event(lines: list[EventLine], basis: PriceBasis, shipping: D, coupon_pct: int) -> PaymentEvent:
    """The paid event whose amount is what its lines, shipping and coupon come to — with the tax added
    per rate group when prices exclude it (computed here on the group totals, independently)."""
    value = sum((ln.total for ln in lines), D(0))
    coupon = q2(value * coupon_pct / 100)
    if basis is PriceBasis.INCLUSIVE:
        amount = value + shipping - coupon
    else:
        # the coupon is spread over the lines in proportion to their values with residual carry
        shares = allocate(coupon, [ln.total for ln in lines]) if coupon else [D(0)] * len(lines)
        groups: dict[D, D] = defaultdict(D)
        for ln, share in zip(lines, shares, strict=True):
            groups[ITEMS[str(ln.sku)].tax_rate] += ln.total - share
        groups[TRANSPORT.tax_rate] += shipping
        amount = sum((a + tax_on(a, rate, inclusive=False) for rate, a in groups.items()), D(0))
    return PaymentEvent(
        platform="test",
        event_id="e",
        kind=EventKind.PAID,
        order_id="o",
        amount=amount,
        lines=tuple(lines),
        shipping=shipping or None,
        order_discount=coupon or None,
    )


def assert_carried(order: InvoiceOrder, event: PaymentEvent, basis: PriceBasis) -> None:
    assert check(order, table=TABLE).errors == ()
    assert order.total == event.amount
    inclusive = basis is PriceBasis.INCLUSIVE
    groups: dict[D, list[tuple[D, D, D]]] = defaultdict(list)
    nets: dict[D, list[D]] = defaultdict(list)  # per rate, each goods line's total net of its discount
    for ln in order.lines:
        assert ln.amount + ln.tax == ln.total
        assert abs(ln.amount * ln.tax_rate - ln.tax) <= LINE_TAX_TOLERANCE
        groups[ln.tax_rate].append((ln.amount, ln.tax, ln.total))
        if ln.is_discount:
            nets[ln.tax_rate][-1] += ln.total
        else:
            nets[ln.tax_rate].append(ln.total)
    for rate, members in groups.items():
        base = sum((total if inclusive else amount for amount, _, total in members), D(0))
        shortfall = tax_on(base, rate, inclusive=inclusive) - sum((tax for _, tax, _ in members), D(0))
        # A one-cent line cannot carry a cent of tax (its amount would be 0): the only exception.
        one_cent = sum(1 for net in nets[rate] if net == D("0.01")) if inclusive else 0
        assert D(0) <= shortfall <= D("0.01") * one_cent


def _random_lines(seed: int, count: int, *, discounts: bool) -> list[EventLine]:
    rng = random.Random(seed)
    return [
        _line(
            rng.choice(sorted(ITEMS)), rng.choice([1, 2, 3]), rng.randint(1, 50_000), rng.choice([0, 1, 99]) * discounts
        )
        for _ in range(count)
    ]


@settings(max_examples=40, deadline=None)
@given(
    lines=lines_strategy,
    basis=st.sampled_from(list(PriceBasis)),
    shipping=st.sampled_from([D(0), D("0.01"), D("12.00"), D("8.88")]),
    coupon_pct=st.sampled_from([0, 0, 7, 50]),
)
# 2,000 invoice lines (the most an invoice may have, discount lines included):
@example(lines=_random_lines(1, 1000, discounts=False), basis=PriceBasis.INCLUSIVE, shipping=D(0), coupon_pct=7)
@example(lines=_random_lines(2, 1000, discounts=True), basis=PriceBasis.EXCLUSIVE, shipping=D(0), coupon_pct=7)
@example(lines=_random_lines(3, 1999, discounts=False), basis=PriceBasis.INCLUSIVE, shipping=D("12.00"), coupon_pct=0)
@example(lines=_random_lines(4, 2000, discounts=False), basis=PriceBasis.EXCLUSIVE, shipping=D(0), coupon_pct=0)
@example(lines=[_line("r13", 1, 100, 0)] * 2000, basis=PriceBasis.INCLUSIVE, shipping=D(0), coupon_pct=0)
@example(lines=[_line("r06", 1, 1, 0)] * 1999, basis=PriceBasis.EXCLUSIVE, shipping=D("0.01"), coupon_pct=0)
def test_line_taxes_add_up_to_the_tax_on_each_rate_total(
    lines: list[EventLine], basis: PriceBasis, shipping: D, coupon_pct: int
) -> None:
    event = paid_event(lines, basis, shipping, coupon_pct)
    assume(event.amount > 0)  # nothing paid is no invoice: refused by its own rule, not this property
    order = normalise(event, STORES[basis], table=TABLE)
    assert_carried(order, event, basis)
