"""Any bytes as body or headers, on any platform's route: never a 5xx (hypothesis, through the app)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.webhooks import PLATFORMS

HEADER_NAMES = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "stripe-signature",
    "x-shopify-hmac-sha256",
    "x-shopify-topic",
    "x-wc-webhook-signature",
    "x-wc-webhook-topic",
    "wechatpay-timestamp",
    "wechatpay-nonce",
    "wechatpay-serial",
    "wechatpay-signature",
    "app-id",
    "event-sign",
    "event-sign",
    "content-type",
]
header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    platform=st.sampled_from(PLATFORMS),
    body=st.binary(max_size=2048),
    headers=st.dictionaries(st.sampled_from(HEADER_NAMES), header_values, max_size=6),
)
def test_any_request_is_answered_below_500(client: Any, platform: str, body: bytes, headers: dict[str, str]) -> None:
    store = "demo-hangzhou" if platform not in ("wechatpay", "alipay") else "demo-shanghai"
    headers = {"content-type": "application/json", **headers}
    r = client.http.post(f"/webhooks/{platform}/{store}", body=body, headers=headers)
    assert r.status_code < 500, (r.status_code, r.body)
