"""抖店 message push: signed as 抖店 signs (md5(app_key + body + app_secret)), cross-checked with the
``doudian`` client's own ``callback`` verification."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from doudian.core import DouDian
from doudian.type import AppType
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.errors import IgnoredEvent, MalformedPayload, SignatureInvalid, WebhookError
from chalicelib.domain.models import EventKind
from chalicelib.domain.order_keys import order_key
from chalicelib.webhooks import douyin
from chalicelib.webhooks.base import Outcome

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2024, 5, 1, 2, 20, 40, tzinfo=UTC)
APP_KEY = "7000000000000000001"
APP_SECRET = "2c8a4f6e-51d3-4b7a-9e1f-0d5c3b2a1e90"
SECRETS: dict[str, Any] = {"app_key": APP_KEY, "app_secret": APP_SECRET}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes().strip()


def signed(body: bytes, *, secret: str = APP_SECRET, app_id: str = APP_KEY, upper: bool = False) -> dict[str, str]:
    digest = hashlib.md5(APP_KEY.encode() + body + secret.encode()).hexdigest()
    return {"app-id": app_id, "event-sign": digest.upper() if upper else digest, "content-type": "application/json"}


def message(tag: str, data: dict[str, Any], msg_id: str = "m1") -> dict[str, Any]:
    return {"tag": tag, "msg_id": msg_id, "data": json.dumps(data)}


# --- happy paths -------------------------------------------------------------------------------
def test_paid_message_and_doudian_agrees() -> None:
    body = fixture("douyin_paid_101.json")
    headers = signed(body)
    client = DouDian(APP_KEY, APP_SECRET, app_type=AppType.TOOL)  # TOOL without a code: no network
    assert client.callback(headers, body) == json.loads(body)  # the client library accepts the signature

    event = douyin.verify(body, headers, SECRETS, NOW)
    assert event.kind is EventKind.PAID
    assert event.platform == "douyin"
    assert event.event_id == "7350000000000000001:101:1714530033"
    assert event.order_id == "4837328765348566675"  # beyond 2**53: kept exact
    assert event.amount == Decimal("159.90") and isinstance(event.amount, Decimal)
    assert event.occurred_at == datetime.fromtimestamp(1714530033, tz=UTC)
    assert event.event_type == "tag:101"


def test_refund_success_message_is_refunded() -> None:
    body = fixture("douyin_refund_206.json")
    event = douyin.verify(body, signed(body), SECRETS, NOW)
    assert event.kind is EventKind.REFUNDED
    assert event.order_id == "4837328765348566675"
    assert event.refund_id == "6999514477070778668"
    assert event.refund_amount == Decimal("59.90")
    assert event.amount == Decimal("59.90")


def test_upper_case_signature_is_accepted() -> None:
    body = fixture("douyin_paid_101.json")
    assert douyin.verify(body, signed(body, upper=True), SECRETS, NOW).kind is EventKind.PAID


def test_secret_rotation() -> None:
    body = fixture("douyin_paid_101.json")
    rotating = {"app_key": APP_KEY, "app_secrets": ["new-secret", APP_SECRET]}
    assert douyin.verify(body, signed(body), rotating, NOW).kind is EventKind.PAID
    assert douyin.verify(body, signed(body, secret="new-secret"), rotating, NOW).kind is EventKind.PAID


def test_batch_verify_all_returns_each_relevant_message() -> None:
    body = fixture("douyin_batch_mixed.json")
    events = douyin.verify_all(body, signed(body), SECRETS, NOW)
    assert [e.event_id for e in events] == ["7350000000000000004:101:1714530050"]
    assert douyin.verify(body, signed(body), SECRETS, NOW).amount == Decimal("29.90")


def test_batch_with_several_relevant_messages_needs_verify_all() -> None:
    batch = [
        message("101", {"p_id": 1, "pay_amount": 100, "shop_id": 77977}, "a"),
        message("206", {"p_id": 2, "aftersale_id": 9, "refund_amount": 50, "shop_id": 77977}, "b"),
    ]
    body = json.dumps(batch).encode()
    events = douyin.verify_all(body, signed(body), SECRETS, NOW)
    assert [(e.event_id, e.kind) for e in events] == [("a", EventKind.PAID), ("b", EventKind.REFUNDED)]
    with pytest.raises(MalformedPayload) as err:
        douyin.verify(body, signed(body), SECRETS, NOW)
    assert err.value.code == "batch_needs_verify_all"


def test_shop_filter_ignores_other_shops() -> None:
    body = fixture("douyin_paid_101.json")
    with pytest.raises(IgnoredEvent):
        douyin.verify(body, signed(body), {**SECRETS, "shop_id": "1"}, NOW)
    assert douyin.verify(body, signed(body), {**SECRETS, "shop_ids": [1, 77977]}, NOW).kind is EventKind.PAID


def test_reply_is_what_doudian_expects() -> None:
    for outcome in Outcome:
        r = douyin.reply(outcome, order_key=order_key("s", douyin.NAME, "o"), status="queued")
        assert r.status == 200 and json.loads(r.body) == {"code": 0, "msg": "success"}
    assert douyin.NAME == "douyin" and douyin.SIGNS_TIMESTAMP is False


# --- rejections --------------------------------------------------------------------------------
def test_tampered_body_is_rejected() -> None:
    body = fixture("douyin_paid_101.json")
    headers = signed(body)
    with pytest.raises(SignatureInvalid) as err:
        douyin.verify(body.replace(b"15990", b"99999"), headers, SECRETS, NOW)
    assert err.value.code == "bad_signature"


def test_wrong_secret_is_rejected() -> None:
    body = fixture("douyin_paid_101.json")
    with pytest.raises(SignatureInvalid) as err:
        douyin.verify(body, signed(body, secret="wrong"), SECRETS, NOW)
    assert err.value.code == "bad_signature"


def test_other_app_is_rejected() -> None:
    body = fixture("douyin_paid_101.json")
    with pytest.raises(SignatureInvalid) as err:
        douyin.verify(body, signed(body, app_id="7000000000000000999"), SECRETS, NOW)
    assert err.value.code == "app_mismatch"


@pytest.mark.parametrize(
    ("name", "value", "code"),
    [
        ("event-sign", "", "missing_header"),
        ("event-sign", "abc", "malformed_header"),
        ("event-sign", "z" * 32, "malformed_header"),
        ("event-sign", "签" * 32, "malformed_header"),
        ("event-sign", "\udcff" * 32, "malformed_header"),
        ("event-sign", "0" * 32, "bad_signature"),
        ("app-id", "", "missing_header"),
        ("app-id", "应用😀", "app_mismatch"),
        ("sign-method", "hmac-sha256", "unsupported_algorithm"),
    ],
)
def test_malformed_headers_are_signature_invalid(name: str, value: str, code: str) -> None:
    body = fixture("douyin_paid_101.json")
    headers = {**signed(body), name: value}
    with pytest.raises(SignatureInvalid) as err:
        douyin.verify(body, headers, SECRETS, NOW)
    assert err.value.code == code


def test_unusable_secrets() -> None:
    body = fixture("douyin_paid_101.json")
    for secrets in ({"app_secret": APP_SECRET}, {"app_key": APP_KEY}, {"app_key": "", "app_secret": "x"}):
        with pytest.raises(SignatureInvalid) as err:
            douyin.verify(body, signed(body), secrets, NOW)
        assert err.value.code == "no_secret"


# --- genuine but irrelevant, or signed but malformed ------------------------------------------
@pytest.mark.parametrize("tag", ["0", "100", "102", "103", "106", "200", "201", "207", 0])
def test_other_tags_and_the_test_push_are_ignored(tag: Any) -> None:
    body = json.dumps([{"tag": tag, "msg_id": "t", "data": json.dumps({"p_id": 1})}]).encode()
    with pytest.raises(IgnoredEvent):
        douyin.verify(body, signed(body), SECRETS, NOW)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ([message("101", {"pay_amount": 100})], "p_id"),
        ([message("101", {"p_id": 1, "pay_amount": "1.00"})], "pay_amount"),
        ([message("101", {"p_id": 1, "pay_amount": 1.5})], "pay_amount"),
        ([message("101", {"p_id": 1, "pay_amount": -1})], "pay_amount"),
        ([message("206", {"p_id": 1, "refund_amount": 100})], "aftersale_id"),
        ([message("206", {"p_id": 1, "aftersale_id": 2, "refund_amount": 0})], "refund_amount"),
        ([{"tag": "101", "data": "{}"}], "msg_id"),
        ([{"tag": "101", "msg_id": "x", "data": "not json"}], "data"),
        ([{"tag": "101", "msg_id": "x", "data": "[1]"}], "data"),
        ([{"msg_id": "x"}], "tag"),
        (["x"], "[0]"),
        ({"tag": [5]}, "tag"),
        ("text", "array"),
    ],
)
def test_signed_wrong_shape_is_malformed(payload: Any, field: str) -> None:
    body = json.dumps(payload).encode()
    with pytest.raises(MalformedPayload) as err:
        douyin.verify(body, signed(body), SECRETS, NOW)
    assert field in err.value.message


def test_signed_non_json_is_malformed() -> None:
    for body in (b"", b"not json", b"\xff\xfe"):
        with pytest.raises((MalformedPayload, SignatureInvalid)):
            douyin.verify(body, signed(body), SECRETS, NOW)


# --- properties --------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=512),
    headers=st.fixed_dictionaries(
        {},
        optional={
            "app-id": st.text(max_size=30) | st.just(APP_KEY),
            "event-sign": st.text(max_size=40) | st.binary(min_size=16, max_size=16).map(bytes.hex),
            "sign-method": st.text(max_size=12),
        },
    ),
)
def test_any_body_and_headers_raise_only_webhook_errors(body: bytes, headers: dict[str, str]) -> None:
    with pytest.raises(WebhookError):
        douyin.verify(body, headers, SECRETS, NOW)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    messages=st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "tag": st.sampled_from(["101", "206", "0"]) | json_values,
                "msg_id": json_values,
                "data": json_values | st.dictionaries(st.text(max_size=12), json_values).map(json.dumps),
            },
        )
        | json_values,
        max_size=4,
    )
)
def test_signed_arbitrary_json_raises_only_webhook_errors_or_parses(messages: list[Any]) -> None:
    body = json.dumps(messages).encode()
    try:
        events = douyin.verify_all(body, signed(body), SECRETS, NOW)
    except WebhookError:
        return
    assert all(isinstance(e.amount, Decimal) for e in events)
