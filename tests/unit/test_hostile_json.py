"""What a sender can put in a signed body, read without a 500: ``webhooks.base.load_json`` (depth, size,
NaN, lone surrogates), the byte bound on ``PaymentEvent`` ids, and ``signed_content``'s safety net."""

from __future__ import annotations

import contextlib
import json
import time
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from chalicelib.config import MAX_WEBHOOK_BYTES
from chalicelib.domain.errors import MalformedPayload, PayloadTooLarge, UnusableContent
from chalicelib.domain.models import MAX_ID_BYTES, PaymentEvent
from chalicelib.webhooks.base import MAX_JSON_DEPTH, ContentIdentity, load_json, plain_id, signed_content


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# --- depth -----------------------------------------------------------------------------------------------
def test_nesting_up_to_the_limit_is_read() -> None:
    value: Any = load_json(nested(MAX_JSON_DEPTH))
    for _ in range(MAX_JSON_DEPTH - 1):
        value = value[0]
    assert value == []


@pytest.mark.parametrize(
    "body",
    [
        nested(MAX_JSON_DEPTH + 1),
        b"[" * 100_000,  # not even closed: refused before the parser recurses
        b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
        b'{"data": {"lines": ' + nested(100_000) + b"}}",
        b"[" * 70 + b'"unterminated',
    ],
    ids=["limit+1", "100k-open", "objects", "inside-an-event", "unterminated-string"],
)
def test_deeper_nesting_is_a_malformed_payload(body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        load_json(body)


def test_brackets_inside_strings_are_not_nesting() -> None:
    doc = {"remark": "[" * 100_000, "quoted": '\\"[[[' * 1000, "n": [[["ok"]]]}
    assert load_json(json.dumps(doc).encode()) == doc


def test_nested_json_text_is_read_the_same_way() -> None:
    """Bodies carry JSON in strings (抖店 ``data``, 有赞 ``msg``): ``load_json`` takes ``str`` too."""
    assert load_json('{"p_id": "1", "pay_amount": 1.50}') == {"p_id": "1", "pay_amount": Decimal("1.50")}
    with pytest.raises(MalformedPayload):
        load_json("[" * 100_000)


@pytest.mark.parametrize(
    "body",
    [
        b'"' + b'\\"' * 120_000,  # a string of escaped quotes, never closed
        b"[" * 70 + b'"' + b'\\"' * 120_000,
        b"[" * 70 + b'"\\' * 120_000,
        b'"a' * 120_000,
        json.dumps([{"k": i, "v": [i, {"x": "y"}]} for i in range(6000)]).encode(),  # many brackets, shallow
    ],
    ids=["escaped-quotes", "deep-then-escapes", "quote-backslash", "many-strings", "many-brackets"],
)
def test_the_depth_check_is_linear_on_crafted_input(body: bytes) -> None:
    started = time.perf_counter()
    with contextlib.suppress(MalformedPayload):
        load_json(body[:MAX_WEBHOOK_BYTES])
    assert time.perf_counter() - started < 0.5


# --- size, values no encoder accepts ------------------------------------------------------------------
def test_json_over_the_body_limit_is_too_large() -> None:
    with pytest.raises(PayloadTooLarge):
        load_json(b'"' + b"x" * MAX_WEBHOOK_BYTES + b'"')


@pytest.mark.parametrize(
    "body",
    [
        b'{"amount": NaN}',
        b'{"amount": Infinity}',
        b'{"amount": -Infinity}',
        b'{"order_id": "\\ud800"}',  # escaped lone high surrogate
        b'{"order_id": "\\udfff-x"}',  # lone low surrogate
        b'{"order_id": "\xed\xa0\x80"}',  # the same, UTF-8-encoded (json decodes with surrogatepass)
        b'{"\\udc00": "in a key"}',
        b'{"lines": [{"name": ["deep", "\\ud83d"]}]}',  # half a pair
    ],
)
def test_values_json_accepts_and_no_encoder_does_are_refused(body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        load_json(body)


def test_surrogate_pairs_and_escaped_backslashes_are_text() -> None:
    assert load_json(b'{"t": "\\ud83d\\ude00"}') == {"t": "😀"}
    assert load_json(b'{"t": "\\\\ud800"}') == {"t": "\\ud800"}  # the six characters, no surrogate


# --- ids in bytes ----------------------------------------------------------------------------------------
def event(**ids: Any) -> PaymentEvent:
    values: dict[str, Any] = {"platform": "standard", "event_id": "e1", "kind": "paid", "order_id": "o1", "amount": "1"}
    return PaymentEvent(**{**values, **ids})


@pytest.mark.parametrize("field", ["event_id", "order_id", "refund_id"])
def test_ids_are_bounded_in_utf8_bytes_not_characters(field: str) -> None:
    assert getattr(event(**{field: "单" * 85 + "a"}), field)  # 256 bytes
    with pytest.raises(MalformedPayload, match=rf"field {field} is too long: 257 bytes"):
        event(**{field: "单" * 85 + "ab"})
    with pytest.raises(MalformedPayload, match="2070 bytes"):
        event(**{field: "单" * 690})  # 690 characters: within 1,000, over DynamoDB's 2,048-byte key
    with pytest.raises(ValidationError, match="string_unicode"):  # pydantic's own check, before ours
        event(**{field: "x\ud800"})


def test_a_refund_id_may_be_absent() -> None:
    assert event(refund_id=None).refund_id is None


def test_plain_id_bounds_bytes_as_the_event_does() -> None:
    assert plain_id("单" * 85) == "单" * 85
    assert plain_id("单" * 86) is None  # 258 bytes
    assert plain_id("x\ud800") is None
    assert plain_id(12345) == "12345"
    assert MAX_ID_BYTES == 256


# --- signed_content --------------------------------------------------------------------------------------
def test_json_nested_too_deep_for_json_loads_inside_signed_content_is_unusable_content() -> None:
    with pytest.raises(UnusableContent) as info, signed_content(lambda: ContentIdentity(order_id="o-1")):
        json.loads("[" * 100_000)  # a module parsing a nested JSON string itself
    assert info.value.order_id == "o-1"
    assert "nested too deeply" in info.value.message


def test_signed_content_drops_an_identity_too_long_for_a_key() -> None:
    identity = ContentIdentity(event_id="e" * 300, kind="paid", order_id="单" * 690, refund_id="r" * 257)
    with pytest.raises(UnusableContent) as info, signed_content(lambda: identity, event_id="e-1"):
        raise MalformedPayload("field amount is out of range")
    assert (info.value.event_id, info.value.order_id, info.value.refund_id) == ("e-1", None, None)
