"""Per platform: the amounts a platform labels outside its lines (shipping, tips and fees, order-level
discounts) reach ``PaymentEvent.shipping`` / ``fees`` / ``order_discount``, and the signed payload
becomes an invoice whose total is what was paid — shipping as the store's ``shipping_item``, fees as
its ``fee_item``, never an invented default-item line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any
from urllib.parse import quote

import pytest

from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.models import PaymentEvent, Store
from chalicelib.domain.normalise import SHIPPING_NAME, normalise
from chalicelib.domain.validation import check
from chalicelib.webhooks import PLATFORMS, platform, shopify, standard, woocommerce, youzan
from tests.support import platform_events
from tests.unit.test_normalise import CAKE, SOFTWARE, TABLE, TRANSPORT, make_store
from tests.unit.webhooks import test_shopify as sh
from tests.unit.webhooks import test_standard as sw
from tests.unit.webhooks import test_woocommerce as wc
from tests.unit.webhooks import test_youzan as yz
from tests.unit.webhooks._fuzz import load_fixture

STORE = make_store(shipping_item=TRANSPORT, fee_item=SOFTWARE.model_copy(update={"name": "小费"}))


def invoice_of(event: PaymentEvent, store: Store = STORE) -> list[tuple[str, D, str]]:
    """(name, total, tax code) of each invoice line, once the invoice is known to be valid and whole."""
    order = normalise(event, store, table=TABLE)
    assert check(order, table=TABLE).errors == ()
    assert order.total == event.amount
    return [(ln.name, ln.total, ln.tax_code) for ln in order.lines]


def shopify_event(doc: dict[str, Any]) -> PaymentEvent:
    body = sh.body_of(doc)
    return shopify.verify(body, sh.signed(body), sh.SECRETS, sh.NOW)


def woo_event(doc: dict[str, Any]) -> PaymentEvent:
    body = wc.body_of(doc)
    return woocommerce.verify(body, wc.signed(body), wc.SECRETS, wc.NOW)


# --- Shopify ----------------------------------------------------------------------------------------
def test_shopify_shipping_becomes_the_shipping_item_line() -> None:
    event = shopify_event(load_fixture("shopify_orders_paid.json"))
    assert invoice_of(event)[-1] == (SHIPPING_NAME, D("12.00"), TRANSPORT.tax_code)
    with pytest.raises(ValidationFailed) as info:
        normalise(event, make_store(), table=TABLE)  # no shipping_item: refused, not the default item
    assert [v.code for v in info.value.violations] == ["event_shipping_item_missing"]


def test_shopify_tips_are_fees_whether_or_not_they_come_as_a_line_item() -> None:
    doc = load_fixture("shopify_orders_paid.json")
    doc["total_price"] = "269.00"
    doc["total_tip_received"] = "10.00"
    event = shopify_event(doc)  # the tip only as total_tip_received
    assert event.fees == D("10.00") and len(event.lines) == 2
    assert invoice_of(event)[-1] == ("小费", D("10.00"), SOFTWARE.tax_code)
    tip = {"id": 1, "title": "Tip", "quantity": 1, "price": "10.00", "product_id": None, "sku": None}
    doc["line_items"].append(tip)
    event = shopify_event(doc)  # the tip also as a line item: left out of the lines, not counted twice
    assert event.fees == D("10.00") and [ln.sku for ln in event.lines] == ["TEA-LJ-250", "CUP-01"]
    assert invoice_of(event)[-1] == ("小费", D("10.00"), SOFTWARE.tax_code)


def test_shopify_unallocated_discount_is_an_order_discount() -> None:
    doc = load_fixture("shopify_orders_paid.json")
    doc["total_discounts"] = "15.00"  # 10.00 is allocated to the first line
    doc["total_price"] = "254.00"
    event = shopify_event(doc)
    assert event.order_discount == D("5.00")
    cuts = [total for name, total, _ in invoice_of(event) if total < 0]
    assert sum(cuts) == D("-15.00")  # the line's 10.00 plus its share of the 5.00


def test_shopify_without_shipping_lines_reads_total_shipping_price_set() -> None:
    doc = load_fixture("shopify_orders_paid.json")
    del doc["shipping_lines"]
    doc["total_shipping_price_set"] = {"shop_money": {"amount": "12.00", "currency_code": "CNY"}}
    assert shopify_event(doc).shipping == D("12.00")
    del doc["total_shipping_price_set"]
    event = shopify_event(doc)
    assert event.shipping is None
    with pytest.raises(ValidationFailed) as info:  # the 12.00 is then unaccounted for
        normalise(event, STORE, table=TABLE)
    assert [v.code for v in info.value.violations] == ["event_total_mismatch"]


# --- WooCommerce ------------------------------------------------------------------------------------
def test_woocommerce_shipping_and_fees_are_labelled() -> None:
    doc = load_fixture("woocommerce_order_processing.json")
    event = woo_event(doc)
    assert invoice_of(event)[-1] == (SHIPPING_NAME, D("12.00"), TRANSPORT.tax_code)
    doc["fee_lines"] = [
        {"id": 5, "name": "包装费", "total": "4.42", "total_tax": "0.58"},
        {"id": 6, "name": "满减", "total": "-3.00", "total_tax": "0"},
    ]
    doc["total"] = "261.00"
    event = woo_event(doc)
    assert (event.fees, event.order_discount) == (D("5.00"), D("3.00"))
    lines = invoice_of(event)
    assert lines[-1] == ("小费", D("5.00"), SOFTWARE.tax_code) and lines[-2][0] == SHIPPING_NAME


def test_woocommerce_without_shipping_lines_reads_shipping_total() -> None:
    doc = load_fixture("woocommerce_order_processing.json")
    del doc["shipping_lines"]
    assert woo_event(doc).shipping == D("12.00")  # shipping_total 11.01 + shipping_tax 0.99


# --- 有赞 ----------------------------------------------------------------------------------------------
def test_youzan_post_fee_is_the_shipping() -> None:
    data = json.loads((yz.FIXTURES / "youzan_trade_paid.json").read_text(encoding="utf-8"))
    data["msg"]["full_order_info"]["pay_info"].update(payment="176.00", post_fee="10.00")
    body = yz.encode({**data["envelope"], "msg": quote(json.dumps(data["msg"]), safe="")})
    event = youzan.verify(body, yz.signed(body), yz.SECRETS, yz.NOW)
    assert event.shipping == D("10.00")
    assert invoice_of(event)[-1] == (SHIPPING_NAME, D("10.00"), TRANSPORT.tax_code)
    # was: the 10.00 became an invented 运费 line of the default item


# --- Standard Webhooks ----------------------------------------------------------------------------------
def test_standard_labelled_fields_and_the_shipping_sku_convention() -> None:
    doc = load_fixture("standard_order_paid.json")
    event = standard.verify(sw.body_of(doc), sw.signed(sw.body_of(doc)), sw.SECRETS, sw.NOW)
    assert invoice_of(event)[-1] == (SHIPPING_NAME, D("12.00"), TRANSPORT.tax_code)
    doc["data"]["lines"].pop()  # the shipping line …
    doc["data"].update(shipping="12.00", fees="3.00", order_discount="5.00", amount="257.00")  # … as fields
    body = sw.body_of(doc)
    event = standard.verify(body, sw.signed(body), sw.SECRETS, sw.NOW)
    assert (event.shipping, event.fees, event.order_discount) == (D("12.00"), D("3.00"), D("5.00"))
    assert invoice_of(event)[-2:] == [
        (SHIPPING_NAME, D("12.00"), TRANSPORT.tax_code),
        ("小费", D("3.00"), SOFTWARE.tax_code),
    ]


# --- every platform ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PLATFORMS)
def test_every_platforms_plain_order_is_invoiced_whole(name: str) -> None:
    body, headers = platform_events.paid(name, "ORDER-1", "88.00")
    event = platform(name).verify(body, headers, platform_events.secret_values(name), datetime.now(UTC))
    store = make_store(catalogue={platform_events.SKU: CAKE})
    assert [total for _, total, _ in invoice_of(event, store)] == [D("88.00")]
    assert event.order_discount is None and event.fees is None and not event.shipping
