"""Events to invoices: blue orders from paid events, red mirrors from refunds."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.models import (
    Buyer,
    BuyerType,
    CatalogueItem,
    EventKind,
    EventLine,
    InvoiceColour,
    InvoiceDefaults,
    InvoiceOrder,
    InvoiceType,
    PaymentEvent,
    ProviderSettings,
    RedReason,
    Seller,
    Store,
    TaxProvider,
    ZeroRateFlag,
)
from chalicelib.domain.normalise import (
    INDIVIDUAL_NAME,
    SHIPPING_NAME,
    normalise,
    normalise_refund,
    order_key_for,
    refund_event_problems,
)
from chalicelib.domain.order_keys import order_key, parse_order_key
from chalicelib.domain.taxcodes import TaxCodeTable
from chalicelib.domain.validation import check, validate

TABLE = TaxCodeTable.default()
SOFTWARE = CatalogueItem(tax_code="3040201010000000000", tax_rate=D("0.06"), short_name="信息技术服务", unit="项")
CAKE = CatalogueItem(tax_code="1030201010000000000", tax_rate=D("0.13"), short_name="焙烤食品", name="蛋糕", unit="个")
RICE = CatalogueItem(tax_code="1030102010100000000", tax_rate=D("0.09"), short_name="谷物加工品", unit="袋")
VEG = CatalogueItem(
    tax_code="1010112150000000000", tax_rate=D("0"), short_name="蔬菜", zero_rate_flag=ZeroRateFlag.EXEMPT
)
TRANSPORT = CatalogueItem(tax_code="3010102020100000000", tax_rate=D("0.09"), short_name="运输服务")


def make_store(**overrides: Any) -> Store:
    values: dict[str, Any] = {
        "store_id": "shop-1",
        "name": "测试店",
        "seller": Seller(name="杭州测试科技有限公司", tax_id="91350100M000100Y43", address="杭州", phone="0571-1"),
        "provider": ProviderSettings(provider=TaxProvider.NUONUO, credentials_secret="einvoice/shop-1/nuonuo"),
        "catalogue": {"cake": CAKE, "rice": RICE, "veg": VEG},
        "default_item": SOFTWARE,
        "invoice_defaults": InvoiceDefaults(issuer="张三", reviewer="李四", remark_template="订单号 {order_id}"),
    }
    values.update(overrides)
    return Store(**values)


def paid(amount: str = "100.00", lines: tuple[EventLine, ...] = (), **overrides: Any) -> PaymentEvent:
    values: dict[str, Any] = {
        "platform": "shopify",
        "event_id": "evt-1",
        "kind": EventKind.PAID,
        "order_id": "o-1",
        "amount": D(amount),
        "lines": lines,
    }
    values.update(overrides)
    return PaymentEvent(**values)


def refund(amount: str | None, refund_id: str = "r-1") -> PaymentEvent:
    return paid(
        "0.01",
        kind=EventKind.REFUNDED,
        refund_id=refund_id,
        refund_amount=D(amount) if amount is not None else None,
        event_id=f"evt-{refund_id}",
    )


def assert_valid(order: InvoiceOrder) -> None:
    report = check(order, table=TABLE)
    assert report.errors == ()


# --- blue ----------------------------------------------------------------------------------------
def test_payment_without_lines_becomes_one_default_line_for_the_whole_amount() -> None:
    o = normalise(paid("100.00"), make_store(), table=TABLE)
    assert o.order_key == order_key("shop-1", "shopify", "o-1") == "shop-1:shopify:o-1"
    assert o.colour is InvoiceColour.BLUE
    (ln,) = o.lines
    assert (ln.tax_code, ln.tax_rate, ln.short_name) == (SOFTWARE.tax_code, D("0.06"), "信息技术服务")
    assert (ln.amount, ln.tax, ln.total) == (D("94.34"), D("5.66"), D("100.00"))
    assert ln.quantity == 1 and ln.unit_price == D("94.34000000")
    assert (o.total_amount, o.total_tax, o.total) == (D("94.34"), D("5.66"), D("100.00"))
    assert_valid(o)


def test_store_defaults_fill_issuer_seller_and_remark() -> None:
    o = normalise(paid(), make_store(), table=TABLE)
    assert (o.issuer, o.reviewer, o.payee) == ("张三", "李四", None)
    assert o.remark == "订单号 o-1"
    assert o.seller.name == "杭州测试科技有限公司" and o.seller.tax_id == "91350100M000100Y43"
    assert o.seller.bank is None  # empty strings on the store become absent fields


def test_remark_template_with_unknown_or_broken_fields_is_kept_literally() -> None:
    store = make_store(invoice_defaults=InvoiceDefaults(issuer="张三", remark_template="{order_id}/{nope}"))
    assert normalise(paid(), store, table=TABLE).remark == "o-1/{nope}"
    store = make_store(invoice_defaults=InvoiceDefaults(issuer="张三", remark_template="单号 {"))
    assert normalise(paid(), store, table=TABLE).remark == "单号 {"


def test_lines_are_classified_by_sku_and_fall_back_to_the_default_item() -> None:
    lines = (
        EventLine(sku="cake", name="生日蛋糕", quantity=D(2), total=D("56.50")),
        EventLine(sku="unknown", name="年费", total=D("43.50")),
    )
    o = normalise(paid("100.00", lines), make_store(), table=TABLE)
    cake, fee = o.lines
    assert (cake.name, cake.short_name, cake.tax_rate, cake.unit) == ("蛋糕", "焙烤食品", D("0.13"), "个")
    assert cake.quantity == 2 and cake.unit_price == D("25.00000000")
    assert (fee.name, fee.tax_code) == ("年费", SOFTWARE.tax_code)
    assert o.total == D("100.00")
    assert_valid(o)


def test_a_line_discount_becomes_a_discount_line_right_after_it() -> None:
    lines = (EventLine(sku="cake", quantity=D(1), unit_price=D("113.00"), total=D("100.00"), discount=D("13.00")),)
    o = normalise(paid("100.00", lines), make_store(), table=TABLE)
    goods, cut = o.lines
    assert (goods.total, goods.is_discount) == (D("113.00"), False)
    assert (cut.total, cut.amount, cut.tax, cut.is_discount) == (D("-13.00"), D("-11.50"), D("-1.50"), True)
    assert cut.name == goods.name and cut.tax_rate == goods.tax_rate
    assert cut.quantity is None and cut.unit_price is None
    assert o.total == D("100.00")
    assert_valid(o)


def test_labelled_shipping_becomes_a_line_of_the_shipping_item() -> None:
    # was: an unlabelled shortfall became an invented 运费 line of the default item
    lines = (EventLine(sku="rice", total=D("50.00")),)
    o = normalise(paid("58.00", lines, shipping=D("8.00")), make_store(shipping_item=TRANSPORT), table=TABLE)
    assert [ln.name for ln in o.lines][-1] == SHIPPING_NAME
    assert o.lines[-1].total == D("8.00") and o.lines[-1].tax_code == TRANSPORT.tax_code
    assert o.total == D("58.00")
    assert_valid(o)


def test_order_level_discount_is_spread_over_lines_into_their_discount_lines() -> None:
    lines = (
        EventLine(sku="cake", total=D("30.00"), discount=D("5.00")),
        EventLine(sku="rice", total=D("70.00")),
    )
    event = paid("90.00", lines, order_discount=D("10.00"))  # a 10.00 coupon the platform labels
    o = normalise(event, make_store(), table=TABLE)
    totals = [(ln.is_discount, ln.total) for ln in o.lines]
    assert totals == [(False, D("35.00")), (True, D("-8.00")), (False, D("70.00")), (True, D("-7.00"))]
    assert o.total == D("90.00")
    assert_valid(o)


def test_free_lines_are_dropped_and_all_free_falls_back_to_the_default_line() -> None:
    lines = (EventLine(sku="cake", total=D("0")), EventLine(sku="rice", total=D("10.00")))
    o = normalise(paid("10.00", lines), make_store(), table=TABLE)
    assert [ln.tax_code for ln in o.lines] == [RICE.tax_code]
    # was: lines that are all free fell back to a default-item line for the whole amount
    with pytest.raises(ValidationFailed) as info:
        normalise(paid("10.00", (EventLine(sku="cake", total=D("0")),)), make_store(), table=TABLE)
    assert [v.code for v in info.value.violations] == ["event_total_mismatch"]


def test_zero_rate_catalogue_item_carries_its_flag() -> None:
    o = normalise(paid("10.00", (EventLine(sku="veg", total=D("10.00")),)), make_store(), table=TABLE)
    (ln,) = o.lines
    assert (ln.tax, ln.amount, ln.zero_rate_flag) == (D("0.00"), D("10.00"), ZeroRateFlag.EXEMPT)
    assert_valid(o)


def test_catalogue_short_name_is_replaced_by_the_tables() -> None:
    store = make_store(catalogue={"x": CAKE.model_copy(update={"short_name": "蛋糕类"})})
    o = normalise(paid("10.00", (EventLine(sku="x", total=D("10.00")),)), store, table=TABLE)
    assert o.lines[0].short_name == "焙烤食品"


def test_no_title_means_an_individual_named_geren() -> None:
    for buyer in (None, Buyer(email="a@example.com")):
        o = normalise(paid(buyer=buyer), make_store(), table=TABLE)
        assert (o.buyer.name, o.buyer.type) == (INDIVIDUAL_NAME, BuyerType.INDIVIDUAL)


def test_a_tax_id_makes_a_company_and_is_cleaned() -> None:
    buyer = Buyer(title="北京测试有限公司", tax_id=" 91110000710929148a\t", email="f@example.com")
    o = normalise(paid(buyer=buyer), make_store(), table=TABLE)
    assert (o.buyer.type, o.buyer.tax_id, o.buyer.email) == (BuyerType.COMPANY, "91110000710929148A", "f@example.com")
    assert_valid(o)


def test_whitespace_inside_a_tax_id_is_kept_for_the_rules_to_refuse() -> None:
    buyer = Buyer(title="北京测试有限公司", tax_id=" 9111 0000 7109 2914 8a ")
    o = normalise(paid(buyer=buyer), make_store(), table=TABLE)
    assert o.buyer.tax_id == "9111 0000 7109 2914 8A"
    assert ("buyer.tax_id", "tax_id_whitespace") in [(v.field, v.code) for v in validate(o, table=TABLE)]


def test_platform_buyer_type_wins_over_inference() -> None:
    buyer = Buyer(title="王五", tax_id="91110000710929148A", type=BuyerType.INDIVIDUAL)
    assert normalise(paid(buyer=buyer), make_store(), table=TABLE).buyer.type is BuyerType.INDIVIDUAL


def test_special_invoice_default_downgrades_for_buyers_without_tax_id() -> None:
    store = make_store(invoice_defaults=InvoiceDefaults(issuer="张三", invoice_type=InvoiceType.SPECIAL))
    assert normalise(paid(), store, table=TABLE).invoice_type is InvoiceType.NORMAL
    company = Buyer(title="北京测试有限公司", tax_id="91110000710929148A")
    assert normalise(paid(buyer=company), store, table=TABLE).invoice_type is InvoiceType.SPECIAL


@pytest.mark.parametrize(
    ("event", "code"),
    [
        (paid(kind=EventKind.REFUNDED), "event_not_paid"),
        (paid(currency="usd"), "event_currency"),
        (paid("0.00"), "event_amount_not_positive"),
        (paid("10.00", (EventLine(total=D("-1")),)), "event_line_negative"),
        (paid("10.00", (EventLine(total=D("5"), discount=D("-1")),)), "event_line_negative"),
    ],
)
def test_unusable_paid_events_are_refused(event: PaymentEvent, code: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        normalise(event, make_store(), table=TABLE)
    assert code in {v.code for v in info.value.violations}


def test_a_fully_discounted_line_plus_shipping_is_still_valid() -> None:
    lines = (EventLine(sku="cake", total=D("0"), discount=D("5.00")),)
    o = normalise(paid("1.00", lines, shipping=D("1.00")), make_store(shipping_item=TRANSPORT), table=TABLE)
    assert [(ln.name, ln.total) for ln in o.lines] == [
        ("蛋糕", D("5.00")),
        ("蛋糕", D("-5.00")),
        (SHIPPING_NAME, D("1.00")),
    ]
    assert_valid(o)


def test_fractional_quantities_keep_price_times_quantity_within_a_cent() -> None:
    o = normalise(
        paid("10.00", (EventLine(sku="rice", quantity=D("0.333"), total=D("10.00")),)), make_store(), table=TABLE
    )
    ln = o.lines[0]
    assert ln.quantity == D("0.333")
    assert ln.unit_price is not None and ln.quantity is not None
    assert abs(ln.unit_price * ln.quantity - ln.amount) <= D("0.01")
    assert_valid(o)


# --- red -----------------------------------------------------------------------------------------
def _blue() -> InvoiceOrder:
    lines = (
        EventLine(sku="cake", quantity=D(2), total=D("50.00"), discount=D("6.50")),
        EventLine(sku="rice", quantity=D(1), total=D("30.00")),
        EventLine(sku="veg", quantity=D(3), total=D("20.00")),
    )
    return normalise(paid("100.00", lines), make_store(), table=TABLE)


def test_full_refund_negates_every_line_and_nets_discounts() -> None:
    blue = _blue()
    r = normalise_refund(refund("100.00"), make_store(), blue, already_reversed=D(0))
    assert r.order_key == order_key("shop-1", "shopify", "o-1", "r-1")
    assert r.colour is InvoiceColour.RED and r.red_reason is RedReason.RETURN
    assert not any(ln.is_discount for ln in r.lines)
    assert [ln.original_line_no for ln in r.lines] == [1, 3, 4]  # blue line 2 is the discount line
    assert r.total == -blue.total and r.total_tax == -blue.total_tax and r.total_amount == -blue.total_amount
    cake = r.lines[0]
    assert cake.total == D("-50.00") and cake.quantity == -2
    assert r.buyer == blue.buyer and r.seller == blue.seller
    assert check(r, table=TABLE) == check(r, table=TABLE) and validate(r, table=TABLE) == []


def test_refund_without_amount_reverses_what_is_left() -> None:
    r = normalise_refund(refund(None), make_store(), _blue(), already_reversed=D("40.00"))
    assert r.total == D("-60.00")
    assert validate(r, table=TABLE) == []


def test_partial_refund_is_spread_in_original_order_with_residual_carry() -> None:
    blue = _blue()
    r = normalise_refund(refund("10.00"), make_store(), blue, already_reversed=D(0))
    assert [ln.original_line_no for ln in r.lines] == [1, 3, 4]
    assert [ln.total for ln in r.lines] == [D("-5.00"), D("-3.00"), D("-2.00")]
    assert all(ln.quantity is None and ln.unit_price is None for ln in r.lines)
    assert r.total == D("-10.00")
    assert validate(r, table=TABLE) == []


def test_successive_partial_refunds_close_the_invoice_exactly() -> None:
    blue, store = _blue(), make_store()
    reds: list[InvoiceOrder] = []
    done = D(0)
    for i, amount in enumerate(["33.33", "33.33", "33.34"]):
        r = normalise_refund(refund(amount, f"r-{i}"), store, blue, already_reversed=done, previous_reds=reds)
        assert validate(r, table=TABLE) == []
        reds.append(r)
        done += D(amount)
    per_line: dict[int, D] = {}
    for r in reds:
        for ln in r.lines:
            assert ln.original_line_no is not None
            per_line[ln.original_line_no] = per_line.get(ln.original_line_no, D(0)) - ln.total
    assert per_line == {1: D("50.00"), 3: D("30.00"), 4: D("20.00")}


def test_refunds_beyond_the_blue_invoice_are_refused() -> None:
    with pytest.raises(ValidationFailed) as info:
        normalise_refund(refund("60.01"), make_store(), _blue(), already_reversed=D("40.00"))
    (v,) = info.value.violations
    assert (v.field, v.code) == ("refund_amount", "refund_exceeds_invoice")
    assert "100.00" in v.message_en


@pytest.mark.parametrize(
    ("event", "already", "code"),
    [
        (refund("0.00"), "0", "refund_amount_not_positive"),
        (refund(None), "100.00", "refund_amount_not_positive"),
        (paid(), "0", "event_not_refund"),
    ],
)
def test_unusable_refunds_are_refused(event: PaymentEvent, already: str, code: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        normalise_refund(event, make_store(), _blue(), already_reversed=D(already))
    assert [v.code for v in info.value.violations] == [code]


def test_a_red_invoice_cannot_be_reversed() -> None:
    store, blue = make_store(), _blue()
    red = normalise_refund(refund("10.00"), store, blue, already_reversed=D(0))
    with pytest.raises(ValidationFailed) as info:
        normalise_refund(refund("1.00"), store, red, already_reversed=D(0))
    assert [v.code for v in info.value.violations] == ["refund_source_not_blue"]


def test_previous_reds_must_match_the_reversed_total() -> None:
    store, blue = make_store(), _blue()
    first = normalise_refund(refund("10.00"), store, blue, already_reversed=D(0))
    with pytest.raises(ValidationFailed) as info:
        normalise_refund(refund("5.00", "r-2"), store, blue, already_reversed=D("9.00"), previous_reds=[first])
    assert [v.code for v in info.value.violations] == ["refund_ledger_mismatch"]


def test_refund_key_falls_back_to_the_event_id() -> None:
    event = refund("1.00").model_copy(update={"refund_id": None})
    r = normalise_refund(event, make_store(), _blue(), already_reversed=D(0))
    assert r.order_key == order_key("shop-1", "shopify", "o-1", "evt-r-1")


def test_the_invoice_carries_the_key_the_intake_records_it_under() -> None:
    store, blue = make_store(), _blue()
    assert blue.order_key == order_key_for(store, paid())
    event = refund("10.00")
    red = normalise_refund(event, store, blue, already_reversed=D(0))
    assert red.order_key == order_key_for(store, event)
    assert parse_order_key(red.order_key).blue == parse_order_key(blue.order_key)


def test_one_order_number_on_two_platforms_is_two_keys() -> None:
    store = make_store()
    shopify = normalise(paid(order_id="1001"), store, table=TABLE)
    woo = normalise(paid(order_id="1001", platform="woocommerce"), store, table=TABLE)
    assert shopify.order_key != woo.order_key
    assert {parse_order_key(o.order_key).platform for o in (shopify, woo)} == {"shopify", "woocommerce"}


@pytest.mark.parametrize(
    ("refund_amount", "codes"),
    [
        (None, ["refund_amount_missing"]),
        ("0.00", ["refund_amount_not_positive"]),
        ("10.001", ["money_precision"]),
        ("100.01", ["refund_exceeds_payment"]),
        ("40.00", []),
    ],
)
def test_refund_events_are_checked_at_intake(refund_amount: str | None, codes: list[str]) -> None:
    event = refund(refund_amount).model_copy(update={"amount": D("100.00")})
    problems = refund_event_problems(event)
    assert [p.code for p in problems] == codes
    assert all(p.field == "refund_amount" and p.message and p.message_en for p in problems)
