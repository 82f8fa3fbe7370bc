"""Shopify: bodies signed with hmac the way Shopify does, cross-checked with ``shopifyapp``'s verifier."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shopify_app import verify_webhook_req

from chalicelib.domain.errors import IgnoredEvent, MalformedPayload, SignatureInvalid
from chalicelib.domain.models import BuyerType, EventKind
from chalicelib.domain.order_keys import order_key
from chalicelib.webhooks import shopify
from chalicelib.webhooks.base import Outcome
from tests.unit.webhooks._fuzz import header_values, json_values, load_fixture, mutated, only_webhook_errors

NOW = datetime(2026, 11, 11, 1, 30, tzinfo=UTC)
NEW = "shpss_new_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
OLD = "shpss_old_0a1b2c3d4e5f60718293a4b5c6d7e8f9"
UNKNOWN = "shpss_unknown_11111111111111111111111111"
SECRETS = {"secrets": [NEW, OLD]}
EVENT_ID = "98880550-7158-44d4-b7cd-2c97c8a091b5"


def body_of(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


def sign(body: bytes, secret: str = NEW) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def signed(body: bytes, *, secret: str = NEW, topic: str = "orders/paid") -> dict[str, str]:
    return {
        "x-shopify-hmac-sha256": sign(body, secret),
        "x-shopify-topic": topic,
        "x-shopify-shop-domain": "demo-tea.myshopify.com",
        "x-shopify-api-version": "2025-10",
        "x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "x-shopify-event-id": EVENT_ID,
        "x-shopify-triggered-at": "2026-11-11T01:30:02.000000Z",
    }


def paid_body() -> bytes:
    return body_of(load_fixture("shopify_orders_paid.json"))


def refund_body() -> bytes:
    return body_of(load_fixture("shopify_refunds_create.json"))


# --- happy paths ---------------------------------------------------------------------------------
def test_orders_paid() -> None:
    body = paid_body()
    event = shopify.verify(body, signed(body), SECRETS, NOW)
    assert event.platform == "shopify"
    assert event.event_id == EVENT_ID
    assert event.kind is EventKind.PAID
    assert event.order_id == "5902416511235"
    assert event.amount == Decimal("259.00")
    assert event.currency == "CNY"
    assert [(line.sku, line.total, line.discount) for line in event.lines] == [
        ("TEA-LJ-250", Decimal("188.00"), Decimal("10.00")),
        ("CUP-01", Decimal("59.00"), Decimal("0")),
    ]
    # shipping is labelled, no longer a line with SKU "shipping"; the 10.00 coupon is allocated to a line
    assert (event.shipping, event.order_discount, event.fees) == (Decimal("12.00"), None, None)
    assert sum((line.total for line in event.lines), Decimal(0)) + event.shipping == event.amount
    assert event.lines[0].name == "西湖龙井"
    assert event.lines[0].unit_price == Decimal("99.00")
    assert event.buyer is not None
    assert event.buyer.title == "杭州示例贸易有限公司"
    assert event.buyer.tax_id == "91330106MA2B0000X1"
    assert event.buyer.email == "finance@example.com"
    assert event.buyer.mobile == "+8613800000000"
    assert event.occurred_at == datetime(2026, 11, 11, 1, 30, 2, tzinfo=UTC)


def test_shopifyapp_agrees() -> None:
    body = paid_body()
    headers = signed(body, secret=OLD)
    request = {
        "method": "POST",
        "headers": headers,
        "url": "https://api.example/webhooks/shopify/s1",
        "body": body.decode(),
    }
    result = verify_webhook_req(request, {"client_id": "cid", "client_secret": NEW, "old_client_secret": OLD})
    assert result.ok
    assert shopify.verify(body, headers, SECRETS, NOW).order_id == "5902416511235"
    bad = verify_webhook_req(request, {"client_id": "cid", "client_secret": UNKNOWN, "old_client_secret": None})
    assert not bad.ok
    with pytest.raises(SignatureInvalid):
        shopify.verify(body, headers, {"secret": UNKNOWN}, NOW)


def test_taxes_excluded_adds_tax_lines() -> None:
    doc = load_fixture("shopify_orders_paid.json")
    doc["taxes_included"] = False
    body = body_of(doc)
    event = shopify.verify(body, signed(body), SECRETS, NOW)
    assert event.lines[0].total == Decimal("209.63")  # 198 - 10 + 21.63
    assert event.lines[0].unit_price is None
    assert event.shipping == Decimal("12.99")  # 12.00 + 0.99 shipping tax


def test_total_discount_used_without_allocations_and_company_as_title() -> None:
    doc = load_fixture("shopify_orders_paid.json")
    doc["line_items"][0]["discount_allocations"] = []
    doc["line_items"][0]["total_discount"] = "5.00"
    doc["note_attributes"] = [
        {"name": "税号", "value": "91330106MA2B0000X1"},
        {"name": "invoice-type", "value": "企业"},
    ]
    body = body_of(doc)
    event = shopify.verify(body, signed(body), SECRETS, NOW)
    assert event.lines[0].total == Decimal("193.00")
    assert event.buyer is not None
    assert event.buyer.title == "杭州示例贸易有限公司"  # billing_address.company
    assert event.buyer.type is BuyerType.COMPANY


def test_no_invoice_attributes_gives_contact_only_buyer() -> None:
    doc = load_fixture("shopify_orders_paid.json")
    doc["note_attributes"] = []
    body = body_of(doc)
    event = shopify.verify(body, signed(body), SECRETS, NOW)
    assert event.buyer is not None
    assert event.buyer.title is None and event.buyer.tax_id is None
    assert event.buyer.email == "finance@example.com"


def test_refunds_create() -> None:
    body = refund_body()
    event = shopify.verify(body, signed(body, topic="refunds/create"), SECRETS, NOW)
    assert event.kind is EventKind.REFUNDED
    assert event.order_id == "5902416511235"
    assert event.refund_id == "929361464"
    assert event.refund_amount == Decimal("59.00")  # the failed transaction is not counted
    assert event.amount == Decimal("59.00")
    assert event.currency == "CNY"


def test_refund_without_money_is_ignored() -> None:
    doc = load_fixture("shopify_refunds_create.json")
    doc["transactions"] = []
    body = body_of(doc)
    with pytest.raises(IgnoredEvent):
        shopify.verify(body, signed(body, topic="refunds/create"), SECRETS, NOW)


def test_unprefixed_header_names_and_webhook_id_fallback() -> None:
    body = paid_body()
    headers = {
        "shopify-hmac-sha256": sign(body),
        "shopify-topic": "orders/paid",
        "shopify-webhook-id": "wh-1",
    }
    assert shopify.verify(body, headers, SECRETS, NOW).event_id == "wh-1"


@pytest.mark.parametrize("topic", ["orders/create", "orders/updated", "products/update", "app/uninstalled"])
def test_other_topics_are_ignored(topic: str) -> None:
    body = paid_body()
    with pytest.raises(IgnoredEvent):
        shopify.verify(body, signed(body, topic=topic), SECRETS, NOW)


# --- signature -----------------------------------------------------------------------------------
def test_tampered_body_is_refused() -> None:
    body = paid_body()
    with pytest.raises(SignatureInvalid) as err:
        shopify.verify(body.replace(b"259.00", b"1.00"), signed(body), SECRETS, NOW)
    assert err.value.code == "bad_signature"


@pytest.mark.parametrize("secret", [NEW, OLD])
def test_rotation_accepts_both(secret: str) -> None:
    body = paid_body()
    assert shopify.verify(body, signed(body, secret=secret), SECRETS, NOW)


def test_shopifyapp_secret_names_are_accepted() -> None:
    body = paid_body()
    secrets = {"client_secret": NEW, "old_client_secret": OLD}
    assert shopify.verify(body, signed(body, secret=OLD), secrets, NOW)
    with pytest.raises(SignatureInvalid):
        shopify.verify(body, signed(body, secret=UNKNOWN), secrets, NOW)


def test_no_secret_configured() -> None:
    body = paid_body()
    with pytest.raises(SignatureInvalid) as err:
        shopify.verify(body, signed(body), {"secrets": [None, 3]}, NOW)
    assert err.value.code == "no_secret"


@pytest.mark.parametrize("missing", ["x-shopify-hmac-sha256", "x-shopify-topic"])
def test_missing_headers(missing: str) -> None:
    body = paid_body()
    headers = signed(body)
    del headers[missing]
    with pytest.raises(SignatureInvalid) as err:
        shopify.verify(body, headers, SECRETS, NOW)
    assert err.value.code == "missing_header"


def test_missing_event_ids() -> None:
    body = paid_body()
    headers = signed(body)
    del headers["x-shopify-event-id"]
    del headers["x-shopify-webhook-id"]
    with pytest.raises(SignatureInvalid, match="Event-Id"):
        shopify.verify(body, headers, SECRETS, NOW)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("x-shopify-hmac-sha256", ""),
        ("x-shopify-hmac-sha256", "not base64!!"),
        ("x-shopify-hmac-sha256", "YWJj"),  # valid base64, wrong length
        ("x-shopify-hmac-sha256", "A" * 5000),
        ("x-shopify-hmac-sha256", "签名签名"),
        ("x-shopify-hmac-sha256", "=" * 44),
        ("x-shopify-topic", "orders paid"),
        ("x-shopify-topic", "订单/支付"),
        ("x-shopify-event-id", "x" * 300),
        ("x-shopify-event-id", "id with space"),
    ],
)
def test_malformed_headers_raise_signature_invalid(name: str, value: str) -> None:
    body = paid_body()
    headers = {**signed(body), name: value}
    with pytest.raises(SignatureInvalid) as err:
        shopify.verify(body, headers, SECRETS, NOW)
    assert err.value.code in {"malformed_header", "missing_header", "bad_signature"}


# --- payload -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("id"), "id"),
        (lambda d: d.pop("total_price"), "total_price"),
        (lambda d: d.pop("currency"), "currency"),
        (lambda d: d.pop("line_items"), "line_items"),
        (lambda d: d["line_items"][1].pop("price"), "line_items[1].price"),
        (lambda d: d["line_items"][0].update(quantity="two"), "line_items[0].quantity"),
        (lambda d: d.update(total_price="-3"), "total_price"),
        (lambda d: d.update(note_attributes="发票"), "note_attributes"),
    ],
)
def test_malformed_order_names_the_field(mutate: Any, field: str) -> None:
    doc = load_fixture("shopify_orders_paid.json")
    mutate(doc)
    body = body_of(doc)
    with pytest.raises(MalformedPayload) as err:
        shopify.verify(body, signed(body), SECRETS, NOW)
    assert field in str(err.value)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("order_id"), "order_id"),
        (lambda d: d.pop("id"), "id"),
        (lambda d: d.pop("transactions"), "transactions"),
        (lambda d: d["transactions"][0].pop("amount"), "transactions[0].amount"),
    ],
)
def test_malformed_refund_names_the_field(mutate: Any, field: str) -> None:
    doc = load_fixture("shopify_refunds_create.json")
    mutate(doc)
    body = body_of(doc)
    with pytest.raises(MalformedPayload) as err:
        shopify.verify(body, signed(body, topic="refunds/create"), SECRETS, NOW)
    assert field in str(err.value)


def test_reply_is_2xx_json() -> None:
    key = order_key("s1", shopify.NAME, "A1")
    queued = shopify.reply(Outcome.QUEUED, order_key=key, status="queued")
    assert queued.status == 202
    assert json.loads(queued.body) == {"order_key": key, "status": "queued", "outcome": "queued"}
    for outcome in (Outcome.DUPLICATE, Outcome.IGNORED):
        again = shopify.reply(outcome, order_key=key, status="issued")
        assert again.status == 200
        assert again.content_type == "application/json"
        assert json.loads(again.body)["outcome"] == outcome.value


# --- properties ----------------------------------------------------------------------------------
HEADER_NAMES = ["x-shopify-hmac-sha256", "x-shopify-topic", "x-shopify-event-id", "shopify-hmac-sha256"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=512), headers=st.dictionaries(st.sampled_from(HEADER_NAMES), header_values))
def test_any_input_raises_only_webhook_errors(body: bytes, headers: dict[str, str]) -> None:
    only_webhook_errors(lambda: shopify.verify(body, headers, SECRETS, NOW))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    doc=st.one_of(
        json_values,
        mutated(load_fixture("shopify_orders_paid.json")),
        mutated(load_fixture("shopify_refunds_create.json")),
    ),
    topic=st.sampled_from(["orders/paid", "refunds/create"]),
)
def test_any_signed_json_raises_only_webhook_errors(doc: Any, topic: str) -> None:
    body = json.dumps(doc, ensure_ascii=False).encode()
    only_webhook_errors(lambda: shopify.verify(body, signed(body, topic=topic), SECRETS, NOW))
