"""All eight platforms through POST /webhooks/{platform}/{store_id} (chalice.test.Client, moto behind it).

One store accepts every platform (``tests/support/platform_events.test_store``); each platform's events
are signed exactly as the platform signs them, and each gets back the answer it expects.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from chalicelib.domain.order_keys import order_key
from tests.app.conftest import PLATFORM_STORE as STORE
from tests.support import platform_events as pe


def queued(stack: Any, aws: Any) -> list[dict[str, Any]]:
    """Every message in the issue queue (received once: call it at the end of a test)."""
    sqs = aws.client("sqs")
    messages: list[dict[str, Any]] = []
    while True:
        reply = sqs.receive_message(QueueUrl=stack.env["ISSUE_QUEUE_URL"], MaxNumberOfMessages=10, WaitTimeSeconds=0)
        batch = reply.get("Messages", [])
        if not batch:
            return messages
        messages.extend(json.loads(m["Body"]) for m in batch)


def post(client: Any, platform: str, body: bytes, headers: dict[str, str]) -> Any:
    return client.http.post(f"/webhooks/{platform}/{STORE}", body=body, headers=headers)


def assert_reply(response: Any, platform: str, *, order_key: str, duplicate: bool = False) -> None:
    expected = pe.expected_reply(platform, order_key=order_key, duplicate=duplicate)
    body = response.body.decode() if isinstance(response.body, bytes) else response.body
    assert response.status_code == expected.status, body
    content_type = response.headers.get("Content-Type") or response.headers.get("content-type") or ""
    assert content_type.split(";")[0].strip() == expected.content_type, content_type
    if isinstance(expected.body, str):
        assert body == expected.body
    else:
        assert json.loads(body) == expected.body


def new_order(platform: str) -> str:
    return f"{platform}-{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize("resent", ["same-delivery", "re-signed"])
@pytest.mark.parametrize("platform", pe.PLATFORMS)
def test_a_genuine_payment_is_answered_as_the_platform_expects_and_queued_once(
    platform_client: Any, stack: Any, aws: Any, platform: str, resent: str
) -> None:
    order_id = new_order(platform)
    key = order_key(STORE, platform, order_id)
    body, headers = pe.paid(platform, order_id, "88.00")

    assert_reply(post(platform_client, platform, body, headers), platform, order_key=key)
    # the platform re-delivers the same event, or sends the order again as a new event (a new event id):
    # the order key alone makes it a duplicate — the same kind of answer, nothing queued again
    again = (body, headers) if resent == "same-delivery" else pe.paid(platform, order_id, "88.00")
    assert_reply(post(platform_client, platform, *again), platform, order_key=key, duplicate=True)

    assert queued(stack, aws) == [{"order_key": key, "kind": "paid"}]


def test_one_order_number_on_two_platforms_of_one_store_is_two_orders(
    platform_client: Any, stack: Any, aws: Any
) -> None:
    """Shopify's order 1001 and WooCommerce's order 1001 are two sales: two records, both queued
    (the old key ``<store>:<order id>`` dropped the second as a duplicate, never invoiced)."""
    from chalicelib.adapters.ledger import Ledger

    keys = {platform: order_key(STORE, platform, "1001") for platform in ("shopify", "woocommerce")}
    assert len(set(keys.values())) == 2
    for platform, key in keys.items():
        assert_reply(post(platform_client, platform, *pe.paid(platform, "1001", "88.00")), platform, order_key=key)

    ledger = Ledger(stack.env["LEDGER_TABLE"])
    for key in keys.values():
        record = ledger.get_order(key)
        assert record is not None and record.status == "queued", record
    assert sorted(m["order_key"] for m in queued(stack, aws)) == sorted(keys.values())


@pytest.mark.parametrize("platform", pe.PLATFORMS)
def test_a_tampered_body_is_401_with_a_reason_and_nothing_queued(
    platform_client: Any, stack: Any, aws: Any, platform: str
) -> None:
    order_id = new_order(platform)
    body, headers = pe.paid(platform, order_id, "88.00")

    r = post(platform_client, platform, pe.tampered(platform, body, order_id), headers)

    assert r.status_code == 401, r.body
    assert r.json_body == {"error": "invalid_signature", "reason": "bad_signature"}
    assert queued(stack, aws) == []


@pytest.mark.parametrize("platform", pe.PLATFORMS)
def test_a_refund_is_queued_under_its_own_order_key(platform_client: Any, stack: Any, aws: Any, platform: str) -> None:
    order_id = new_order(platform)
    refund_id = str(uuid.uuid4().int % 10**12)
    assert post(platform_client, platform, *pe.paid(platform, order_id, "88.00")).status_code in (200, 202)

    body, headers = pe.refunded(platform, order_id, "30.00", refund_id=refund_id)
    refund_key = order_key(STORE, platform, order_id, refund_id)
    assert_reply(post(platform_client, platform, body, headers), platform, order_key=refund_key)

    assert sorted(queued(stack, aws), key=lambda m: m["order_key"]) == [
        {"order_key": order_key(STORE, platform, order_id), "kind": "paid"},
        {"order_key": refund_key, "kind": "refunded"},
    ]


def test_a_genuine_event_of_one_platform_is_refused_on_another_platforms_url(platform_client: Any) -> None:
    """A Shopify-signed body posted to the WooCommerce URL: the WooCommerce check finds no signature."""
    body, headers = pe.paid("shopify", new_order("shopify"), "88.00")
    r = post(platform_client, "woocommerce", body, headers)
    assert r.status_code == 401
    assert r.json_body == {"error": "invalid_signature", "reason": "missing_header"}


def _library_accepts(platform: str, body: bytes, headers: dict[str, str]) -> bool:
    """The platform's own client library (or reference implementation) verifies the delivery."""
    if platform == "standard":
        from standardwebhooks import Webhook

        Webhook(pe.STANDARD_SECRET).verify(body, headers)
        return True
    if platform == "stripe":
        import stripe

        stripe.Webhook.construct_event(body.decode(), headers["stripe-signature"], pe.STRIPE_SECRET)
        return True
    if platform == "shopify":
        from shopify_app import verify_webhook_req

        request = {
            "method": "POST",
            "headers": headers,
            "url": "https://api.example/webhooks/shopify/s",
            "body": body.decode(),
        }
        secrets = {"client_id": "cid", "client_secret": pe.SHOPIFY_SECRET, "old_client_secret": None}
        return bool(verify_webhook_req(request, secrets).ok)
    if platform == "douyin":
        from doudian.core import DouDian
        from doudian.type import AppType

        client = DouDian(pe.DOUYIN_APP_KEY, pe.DOUYIN_APP_SECRET, app_type=AppType.TOOL)  # no network
        return bool(client.callback(headers, body) == json.loads(body))
    if platform == "alipay":
        from urllib.parse import parse_qsl

        params = dict(parse_qsl(body.decode(), keep_blank_values=True))
        sign = params.pop("sign")
        return bool(pe._keys().alipay_sdk.verify(params, sign))
    if platform == "wechatpay":
        from wechatpayv3.utils import rsa_verify

        return bool(
            rsa_verify(
                headers["wechatpay-timestamp"],
                headers["wechatpay-nonce"],
                body.decode(),
                headers["wechatpay-signature"],
                pe._keys().wechat_platform.public_key(),
            )
        )
    return True  # WooCommerce and 有赞 ship no verifier: their stdlib signing is checked by the route tests


@pytest.mark.parametrize("platform", pe.PLATFORMS)
def test_the_platforms_own_libraries_accept_the_built_deliveries(platform: str) -> None:
    assert _library_accepts(platform, *pe.paid(platform, new_order(platform), "88.00"))
    assert _library_accepts(platform, *pe.refunded(platform, new_order(platform), "30.00", refund_id="42"))
