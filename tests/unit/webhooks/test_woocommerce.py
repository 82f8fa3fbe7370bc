"""WooCommerce: bodies signed with stdlib hmac the way WC_Webhook::generate_signature does."""

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

from chalicelib.domain.errors import IgnoredEvent, MalformedPayload, SignatureInvalid
from chalicelib.domain.models import EventKind
from chalicelib.domain.order_keys import order_key
from chalicelib.webhooks import woocommerce
from chalicelib.webhooks.base import Outcome
from tests.unit.webhooks._fuzz import header_values, json_values, load_fixture, mutated, only_webhook_errors

NOW = datetime(2026, 11, 11, 1, 30, tzinfo=UTC)
NEW = "wc-secret-new-~Z9>r8Q!m2#kL"
OLD = "wc-secret-old-p4$Xw7&Tn1@e"
UNKNOWN = "wc-secret-nobody"
SECRETS = {"secrets": [NEW, OLD]}
DELIVERY = "6d1f8f3c4d8a1a6c2b0e9f7d5c3b1a09"


def body_of(doc: Any) -> bytes:
    # WordPress' wp_json_encode escapes slashes and non-ASCII by default: sign exactly those bytes
    return json.dumps(doc).encode()


def sign(body: bytes, secret: str = NEW) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def signed(body: bytes, *, secret: str = NEW, topic: str = "order.updated") -> dict[str, str]:
    resource, _, event = topic.partition(".")
    return {
        "x-wc-webhook-source": "https://tea.example.cn/",
        "x-wc-webhook-topic": topic,
        "x-wc-webhook-resource": resource,
        "x-wc-webhook-event": event,
        "x-wc-webhook-signature": sign(body, secret),
        "x-wc-webhook-id": "12",
        "x-wc-webhook-delivery-id": DELIVERY,
    }


def fixture_body(name: str = "woocommerce_order_processing.json") -> bytes:
    return body_of(load_fixture(name))


# --- happy paths ---------------------------------------------------------------------------------
def test_processing_order_is_paid() -> None:
    body = fixture_body()
    event = woocommerce.verify(body, signed(body), SECRETS, NOW)
    assert event.platform == "woocommerce"
    assert event.event_id == DELIVERY
    assert event.kind is EventKind.PAID
    assert event.order_id == "727"
    assert event.amount == Decimal("259.00")
    assert event.currency == "CNY"
    assert [(line.sku, line.total) for line in event.lines] == [
        ("TEA-LJ-250", Decimal("188.00")),  # 166.37 + 21.63: total + total_tax
        ("CUP-01", Decimal("59.00")),
    ]
    # shipping is labelled (11.01 + 0.99), no longer a line with SKU "shipping"
    assert (event.shipping, event.fees, event.order_discount) == (Decimal("12.00"), None, None)
    assert sum((line.total for line in event.lines), Decimal(0)) + event.shipping == event.amount
    assert event.lines[0].discount == Decimal("10.00")  # (175.22 + 22.78) - 188.00
    assert event.lines[0].unit_price == Decimal("99.00")
    assert event.lines[0].quantity == Decimal(2)
    assert event.buyer is not None
    assert event.buyer.title == "杭州示例贸易有限公司"
    assert event.buyer.tax_id == "91330106MA2B0000X1"
    assert event.buyer.mobile == "13800000000"
    assert event.occurred_at == datetime(2026, 11, 11, 1, 30, 5, tzinfo=UTC)
    assert event.event_type == "order.updated:processing"


def test_completed_and_order_created_are_paid_too() -> None:
    doc = load_fixture("woocommerce_order_processing.json")
    doc["status"] = "completed"
    body = body_of(doc)
    assert woocommerce.verify(body, signed(body, topic="order.created"), SECRETS, NOW).kind is EventKind.PAID


def test_refunded_order_is_a_full_refund_with_newest_refund_id() -> None:
    body = fixture_body("woocommerce_order_refunded.json")
    event = woocommerce.verify(body, signed(body), SECRETS, NOW)
    assert event.kind is EventKind.REFUNDED
    assert event.refund_id == "731"
    assert event.refund_amount == Decimal("259.00")
    assert event.amount == Decimal("259.00")


def test_refunded_without_refund_list_has_a_stable_refund_id() -> None:
    doc = load_fixture("woocommerce_order_refunded.json")
    doc["refunds"] = []
    body = body_of(doc)
    first = woocommerce.verify(body, signed(body), SECRETS, NOW)
    again = woocommerce.verify(body, {**signed(body), "x-wc-webhook-delivery-id": "another"}, SECRETS, NOW)
    assert first.refund_id == again.refund_id == "full"


def test_tax_id_with_company_fallback_and_fee_lines() -> None:
    doc = load_fixture("woocommerce_order_processing.json")
    doc["meta_data"] = [{"id": 1, "key": "纳税人识别号", "value": "91330106MA2B0000X1"}]
    doc["fee_lines"] = [
        {"id": 5, "name": "包装费", "total": "4.42", "total_tax": "0.58"},
        {"id": 6, "name": "折扣", "total": "-5.00", "total_tax": "0"},
    ]
    body = body_of(doc)
    event = woocommerce.verify(body, signed(body), SECRETS, NOW)
    assert event.buyer is not None and event.buyer.title == "杭州示例贸易有限公司"
    # fee lines are labelled, no longer lines with SKU "fee": a positive fee is a fee, a negative one
    # (a cart discount) an order discount
    assert [line.sku for line in event.lines] == ["TEA-LJ-250", "CUP-01"]
    assert (event.fees, event.order_discount) == (Decimal("5.00"), Decimal("5.00"))


# --- ping ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("signed_ping", [False, True])
def test_ping_is_ignored_never_refused(signed_ping: bool) -> None:
    body = b"webhook_id=12"
    headers = {"content-type": "application/x-www-form-urlencoded", "user-agent": "WooCommerce/9.4.2 Hookshot"}
    if signed_ping:
        headers["x-wc-webhook-signature"] = sign(body)
    with pytest.raises(IgnoredEvent) as err:
        woocommerce.verify(body, headers, SECRETS, NOW)
    assert err.value.code == "ping"


# --- signature -----------------------------------------------------------------------------------
def test_tampered_body_is_refused() -> None:
    body = fixture_body()
    with pytest.raises(SignatureInvalid) as err:
        woocommerce.verify(body.replace(b"259.00", b"2.59"), signed(body), SECRETS, NOW)
    assert err.value.code == "bad_signature"


@pytest.mark.parametrize("secret", [NEW, OLD])
def test_rotation_accepts_both(secret: str) -> None:
    body = fixture_body()
    assert woocommerce.verify(body, signed(body, secret=secret), SECRETS, NOW)


def test_unknown_secret_is_refused() -> None:
    body = fixture_body()
    with pytest.raises(SignatureInvalid):
        woocommerce.verify(body, signed(body, secret=UNKNOWN), {"secret": NEW}, NOW)


@pytest.mark.parametrize("missing", ["x-wc-webhook-signature", "x-wc-webhook-topic", "x-wc-webhook-delivery-id"])
def test_missing_headers(missing: str) -> None:
    body = fixture_body()
    headers = signed(body)
    del headers[missing]
    with pytest.raises(SignatureInvalid) as err:
        woocommerce.verify(body, headers, SECRETS, NOW)
    assert err.value.code == "missing_header"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("x-wc-webhook-signature", "not base64 at all"),
        ("x-wc-webhook-signature", "YWJj"),
        ("x-wc-webhook-signature", "签名"),
        ("x-wc-webhook-signature", "A" * 9000),
        ("x-wc-webhook-topic", "order updated"),
        ("x-wc-webhook-topic", "订单.更新"),
        ("x-wc-webhook-delivery-id", "x" * 300),
        ("x-wc-webhook-delivery-id", "\x00"),
    ],
)
def test_malformed_headers_raise_signature_invalid(name: str, value: str) -> None:
    body = fixture_body()
    headers = {**signed(body), name: value}
    with pytest.raises(SignatureInvalid) as err:
        woocommerce.verify(body, headers, SECRETS, NOW)
    assert err.value.code in {"malformed_header", "missing_header"}


# --- payload -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "topic", ["order.deleted", "product.updated", "customer.created", "action.woocommerce_add_to_cart"]
)
def test_other_topics_are_ignored(topic: str) -> None:
    body = fixture_body()
    with pytest.raises(IgnoredEvent):
        woocommerce.verify(body, signed(body, topic=topic), SECRETS, NOW)


@pytest.mark.parametrize("status", ["pending", "on-hold", "cancelled", "failed", "checkout-draft", "trash"])
def test_unpaid_statuses_are_ignored(status: str) -> None:
    doc = load_fixture("woocommerce_order_pending.json")
    doc["status"] = status
    body = body_of(doc)
    with pytest.raises(IgnoredEvent):
        woocommerce.verify(body, signed(body), SECRETS, NOW)


def test_processing_without_date_paid_is_ignored() -> None:
    doc = load_fixture("woocommerce_order_pending.json")
    doc["status"] = "processing"  # e.g. bank transfer moved by hand without payment
    body = body_of(doc)
    with pytest.raises(IgnoredEvent):
        woocommerce.verify(body, signed(body), SECRETS, NOW)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("id"), "id"),
        (lambda d: d.pop("status"), "status"),
        (lambda d: d.pop("total"), "total"),
        (lambda d: d.pop("currency"), "currency"),
        (lambda d: d.pop("line_items"), "line_items"),
        (lambda d: d["line_items"][0].pop("total"), "line_items[0].total"),
        (lambda d: d["line_items"][0].update(quantity=None), "line_items[0].quantity"),
        (lambda d: d["shipping_lines"][0].update(total="free"), "shipping_lines[0].total"),
        (lambda d: d.update(total=259.5e30), "total"),
    ],
)
def test_malformed_order_names_the_field(mutate: Any, field: str) -> None:
    doc = load_fixture("woocommerce_order_processing.json")
    mutate(doc)
    body = body_of(doc)
    with pytest.raises(MalformedPayload) as err:
        woocommerce.verify(body, signed(body), SECRETS, NOW)
    assert field in str(err.value)


def test_legacy_payload_is_explained() -> None:
    body = body_of({"order": load_fixture("woocommerce_order_processing.json")})
    with pytest.raises(MalformedPayload, match="v3"):
        woocommerce.verify(body, signed(body), SECRETS, NOW)


def test_reply_is_2xx_json() -> None:
    key = order_key("s1", woocommerce.NAME, "A1")
    queued = woocommerce.reply(Outcome.QUEUED, order_key=key, status="queued")
    assert queued.status == 202
    assert json.loads(queued.body) == {"order_key": key, "status": "queued", "outcome": "queued"}
    for outcome in (Outcome.DUPLICATE, Outcome.IGNORED):
        again = woocommerce.reply(outcome, order_key=key, status="issued")
        assert again.status == 200
        assert again.content_type == "application/json"
        assert json.loads(again.body)["outcome"] == outcome.value


# --- properties ----------------------------------------------------------------------------------
HEADER_NAMES = ["x-wc-webhook-signature", "x-wc-webhook-topic", "x-wc-webhook-delivery-id"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.binary(max_size=512) | st.from_regex(rb"\Awebhook_id=[0-9]{0,25}\Z"),
    headers=st.dictionaries(st.sampled_from(HEADER_NAMES), header_values),
)
def test_any_input_raises_only_webhook_errors(body: bytes, headers: dict[str, str]) -> None:
    only_webhook_errors(lambda: woocommerce.verify(body, headers, SECRETS, NOW))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    doc=st.one_of(
        json_values,
        mutated(load_fixture("woocommerce_order_processing.json")),
        mutated(load_fixture("woocommerce_order_refunded.json")),
    ),
    topic=st.sampled_from(["order.updated", "order.created"]),
)
def test_any_signed_json_raises_only_webhook_errors(doc: Any, topic: str) -> None:
    body = json.dumps(doc).encode()
    only_webhook_errors(lambda: woocommerce.verify(body, signed(body, topic=topic), SECRETS, NOW))
