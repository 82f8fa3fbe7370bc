"""Stripe Checkout's labelled amounts: shipping and the order's discounts, read from the session and
invoiced as the other platforms' are (the store's shipping item, discount lines) — events signed with
the ``stripe`` library's own signer, as ``test_stripe.py`` signs them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import stripe

from chalicelib.domain.errors import MalformedPayload, ValidationFailed
from chalicelib.domain.normalise import normalise
from chalicelib.domain.taxcodes import TaxCodeTable
from chalicelib.webhooks import stripe as stripe_hook
from infra.seed import load_store_files
from tests.unit.webhooks._fuzz import load_fixture

NOW = datetime(2026, 11, 11, 1, 30, tzinfo=UTC)
SECRET = "whsec_test_labels_5e1d2c3b4a59687766554433221100ff"
STORE = next(s for s in load_store_files() if s.store_id == "demo-hangzhou")  # takes stripe; has a shipping item


def session(**changes: Any) -> dict[str, Any]:
    """The fixture's ``checkout.session.completed`` with ``data.object`` fields replaced."""
    doc = load_fixture("stripe_checkout_session_completed.json")
    doc["data"]["object"].update(changes)
    return doc


def verified(doc: dict[str, Any]) -> Any:
    body = json.dumps(doc, ensure_ascii=False).encode()
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), SECRET, timestamp=int(NOW.timestamp()))
    stripe.Webhook.construct_event(body, header, SECRET, tolerance=0)  # the library accepts what we verify
    return stripe_hook.verify(body, {"stripe-signature": header}, {"secrets": [SECRET]}, NOW)


SHIPPED = {
    "amount_subtotal": 25000,
    "amount_total": 25700,  # 250.00 of goods − 5.00 coupon + 12.00 shipping
    "shipping_cost": {"amount_subtotal": 1200, "amount_tax": 0, "amount_total": 1200, "shipping_rate": "shr_demo"},
    "total_details": {"amount_discount": 500, "amount_shipping": 1200, "amount_tax": 0},
}


def test_shipping_and_the_discount_are_read_from_the_session() -> None:
    event = verified(session(**SHIPPED))
    assert (event.amount, event.shipping, event.order_discount) == (
        Decimal("257.00"),
        Decimal("12.00"),
        Decimal("5.00"),
    )
    assert event.lines == () and event.fees is None


def test_shipping_cost_is_what_the_buyer_paid_for_it_and_total_details_the_fallback() -> None:
    taxed = {**SHIPPED["shipping_cost"], "amount_tax": 108, "amount_total": 1308}  # shipping with its tax
    assert verified(session(**{**SHIPPED, "amount_total": 25808, "shipping_cost": taxed})).shipping == Decimal("13.08")
    assert verified(session(**{**SHIPPED, "shipping_cost": None})).shipping == Decimal("12.00")


def test_nothing_labelled_is_none_and_a_zero_decimal_currency_stays_whole() -> None:
    plain = verified(session())  # the fixture: total_details all 0, no shipping_cost
    assert (plain.shipping, plain.order_discount) == (None, None)
    yen = verified(session(**{**SHIPPED, "currency": "jpy", "amount_total": 2570}))
    assert (yen.currency, yen.shipping, yen.order_discount) == ("JPY", Decimal("1200"), Decimal("500"))


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"shipping_cost": {"amount_total": -1}}, "data.object.shipping_cost.amount_total"),
        ({"shipping_cost": None, "total_details": {"amount_shipping": "12.00"}}, "total_details.amount_shipping"),
        ({"total_details": {"amount_discount": 1.5}}, "data.object.total_details.amount_discount"),
        ({"shipping_cost": "shr_demo"}, "data.object.shipping_cost"),
    ],
)
def test_an_unusable_label_is_refused_naming_its_field(changes: dict[str, Any], path: str) -> None:
    with pytest.raises(MalformedPayload) as refused:
        verified(session(**changes))
    assert path in str(refused.value)


def test_the_invoice_shows_the_shipping_item_and_a_discount_line_and_adds_up_to_what_was_paid() -> None:
    order = normalise(verified(session(**SHIPPED)), STORE, table=TaxCodeTable.default())
    goods, discount, shipping = order.lines
    assert (goods.tax_code, goods.total) == (STORE.default_item.tax_code, Decimal("250.00"))
    assert discount.is_discount and discount.total == Decimal("-5.00")
    assert (shipping.tax_code, shipping.tax_rate, shipping.total) == (
        STORE.shipping_item.tax_code if STORE.shipping_item else None,
        Decimal("0.09"),
        Decimal("12.00"),
    )
    assert order.total == Decimal("257.00")


def test_shipping_without_the_stores_shipping_item_is_refused_not_put_on_the_default_item() -> None:
    store = STORE.model_copy(update={"shipping_item": None})
    with pytest.raises(ValidationFailed) as refused:
        normalise(verified(session(**SHIPPED)), store, table=TaxCodeTable.default())
    assert "event_shipping_item_missing" in [v.code for v in refused.value.violations]
