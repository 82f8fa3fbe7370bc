"""Property tests: the arithmetic invariants, normalise ∘ validate, and validate's totality."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.amounts import allocate, decimal_places, split_inclusive
from chalicelib.domain.models import (
    Buyer,
    BuyerType,
    ChecksumPolicy,
    EventKind,
    EventLine,
    InvoiceBuyer,
    InvoiceColour,
    InvoiceLine,
    InvoiceOrder,
    InvoiceType,
    Party,
    PaymentEvent,
    ZeroRateFlag,
)
from chalicelib.domain.normalise import normalise, normalise_refund
from chalicelib.domain.order_keys import order_key
from chalicelib.domain.taxcodes import VAT_RATES, TaxCodeTable
from chalicelib.domain.validation import check, validate
from tests.unit.test_normalise import TRANSPORT, make_store

TABLE = TaxCodeTable.default()
STORE = make_store(shipping_item=TRANSPORT)
RATES = sorted(VAT_RATES)

cents = st.integers(min_value=-(10**11), max_value=10**11).map(lambda n: D(n) / 100)
positive_cents = st.integers(min_value=1, max_value=10**8).map(lambda n: D(n) / 100)


@settings(max_examples=200, deadline=None)
@given(total=cents, rate=st.sampled_from(RATES))
def test_split_always_adds_up_and_stays_within_the_line_tolerance(total: D, rate: D) -> None:
    split = split_inclusive(total, rate)
    assert split.amount + split.tax == split.total == total
    assert decimal_places(split.amount) <= 2 and decimal_places(split.tax) <= 2
    assert abs(split.amount * rate - split.tax) <= D("0.06")
    assert split_inclusive(-total, rate) == (-split.amount, -split.tax, -split.total)


@settings(max_examples=200, deadline=None)
@given(
    total=st.integers(min_value=0, max_value=10**9).map(lambda n: D(n) / 100),
    weights=st.lists(st.integers(min_value=0, max_value=10**8).map(lambda n: D(n) / 100), min_size=1, max_size=40),
)
def test_allocation_sums_exactly_and_each_part_is_within_a_cent(total: D, weights: list[D]) -> None:
    whole = sum(weights, D(0))
    if whole == 0:
        return
    parts = allocate(total, weights)
    assert sum(parts, D(0)) == total
    for part, weight in zip(parts, weights, strict=True):
        assert abs(part - total * weight / whole) <= D("0.01")
        if total <= whole:
            assert D(0) <= part <= weight


event_lines = st.builds(
    EventLine,
    sku=st.sampled_from(["cake", "rice", "veg", "unknown", None]),
    name=st.sampled_from(["商品", "礼盒", None]),
    quantity=st.sampled_from([D(1), D(2), D(3), D("0.5"), D("1.25"), D(12)]),
    total=st.integers(min_value=0, max_value=500_000).map(lambda n: D(n) / 100),
    discount=st.one_of(st.just(D(0)), st.integers(min_value=1, max_value=50_000).map(lambda n: D(n) / 100)),
)
buyers = st.one_of(
    st.none(),
    st.builds(Buyer, title=st.sampled_from(["北京测试有限公司", "王五", None])),
    st.builds(
        Buyer, title=st.just("深圳测试有限公司"), tax_id=st.sampled_from(["91110000710929148A", "914403001922038216"])
    ),
)


@st.composite
def paid_events(draw: st.DrawFn) -> PaymentEvent:
    lines = tuple(draw(st.lists(event_lines, max_size=15)))
    net = sum((ln.total for ln in lines), D(0))
    # labelled shipping on top, a labelled order-level coupon below, or exactly the lines
    adjustment = D(draw(st.integers(min_value=-int(net * 100) + 1, max_value=20_000))) / 100 if net > 0 else D(0)
    amount = net + adjustment if net > 0 else draw(positive_cents)
    shipping = adjustment if adjustment > 0 else None
    if lines and net == 0:
        shipping = amount  # only free or fully discounted lines: what was paid is the shipping
    return PaymentEvent(
        platform="test",
        event_id="e",
        kind=EventKind.PAID,
        order_id=draw(st.text(alphabet="abc123-", min_size=1, max_size=20)),
        amount=amount,
        lines=lines,
        buyer=draw(buyers),
        shipping=shipping,
        order_discount=-adjustment if adjustment < 0 else None,
    )


@settings(max_examples=150, deadline=None)
@given(event=paid_events())
def test_a_normalised_valid_event_passes_validation(event: PaymentEvent) -> None:
    order = normalise(event, STORE, table=TABLE)
    report = check(order, table=TABLE, buyer_checksum_policy=ChecksumPolicy.REJECT)
    assert report.errors == (), report.errors
    assert order.total == event.amount


@settings(max_examples=100, deadline=None)
@given(event=paid_events(), cuts=st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=4))
def test_refunds_in_any_steps_stay_valid_and_never_exceed_the_blue(event: PaymentEvent, cuts: list[int]) -> None:
    blue = normalise(event, STORE, table=TABLE)
    reds: list[InvoiceOrder] = []
    done = D(0)
    for i, cut in enumerate(cuts):
        left = blue.total - done
        amount = max(D("0.01"), (left * cut / 100).quantize(D("0.01"))) if i < len(cuts) - 1 else left
        if amount <= 0 or amount > left:
            break
        refund = event.model_copy(update={"kind": EventKind.REFUNDED, "refund_id": f"r{i}", "refund_amount": amount})
        red = normalise_refund(refund, STORE, blue, already_reversed=done, previous_reds=reds)
        assert validate(red, table=TABLE) == []
        assert red.total == -amount
        reds.append(red)
        done += amount
    assert done <= blue.total


# --- validate is total ------------------------------------------------------------------------------
any_decimal = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False),
    cents,
    st.sampled_from([D("1E+30"), D("-1E+30"), D("1E-30"), D("0"), D("-0.00")]),
)
short_text = st.text(max_size=120)
tax_ids = st.one_of(st.none(), st.sampled_from(["91350100M000100Y43", "339902999999789113", "x", ""]), short_text)
any_line = st.builds(
    InvoiceLine,
    name=short_text,
    short_name=short_text,
    tax_code=st.one_of(st.sampled_from([e.code for e in TABLE]), st.text(max_size=25)),
    tax_rate=st.one_of(st.sampled_from(RATES), any_decimal),
    quantity=st.one_of(st.none(), any_decimal),
    unit_price=st.one_of(st.none(), any_decimal),
    amount=any_decimal,
    tax=any_decimal,
    total=any_decimal,
    is_discount=st.booleans(),
    zero_rate_flag=st.one_of(st.none(), st.sampled_from(list(ZeroRateFlag))),
    original_line_no=st.one_of(st.none(), st.integers()),
)
parties = st.builds(Party, name=short_text, tax_id=tax_ids, address=short_text, phone=short_text)
any_order = st.builds(
    InvoiceOrder,
    order_key=st.just(order_key("s", "standard", "o")),
    store_id=st.just("s"),
    order_id=st.just("o"),
    colour=st.sampled_from(list(InvoiceColour)),
    invoice_type=st.sampled_from(list(InvoiceType)),
    seller=parties,
    buyer=st.builds(
        InvoiceBuyer, name=short_text, tax_id=tax_ids, type=st.sampled_from(list(BuyerType)), bank=short_text
    ),
    lines=st.lists(any_line, max_size=6).map(tuple),
    total_amount=any_decimal,
    total_tax=any_decimal,
    total=any_decimal,
    issuer=st.just("i"),
    remark=st.one_of(st.none(), st.text(max_size=300)),
)


@settings(max_examples=200, deadline=None)
@given(order=any_order, limit=st.one_of(st.none(), any_decimal), policy=st.sampled_from(list(ChecksumPolicy)))
def test_validation_never_raises_and_always_returns_a_list(
    order: InvoiceOrder, limit: D | None, policy: ChecksumPolicy
) -> None:
    result = validate(order, table=TABLE, buyer_checksum_policy=policy, single_invoice_limit=limit)
    assert isinstance(result, list)
    for v in result:
        assert v.field and v.code and v.message and v.message_en
