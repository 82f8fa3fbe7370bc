"""Youzan message push: signed as Youzan signs (Event-Sign = md5(client_id + body + client_secret);
legacy body ``sign`` = md5(client_id + msg + client_secret)), with the stdlib only."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.errors import IgnoredEvent, MalformedPayload, SignatureInvalid, WebhookError
from chalicelib.domain.models import BuyerType, EventKind
from chalicelib.domain.order_keys import order_key
from chalicelib.webhooks import youzan
from chalicelib.webhooks.base import Outcome

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2024, 5, 1, 2, 20, 40, tzinfo=UTC)
CLIENT_ID = "cc939cb8063622a84d"
CLIENT_SECRET = "5b2c1e8f0d7a4c3b9e6f1a2d3c4b5a69"
SECRETS: dict[str, Any] = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
CHINA = timezone(timedelta(hours=8))


def md5(*parts: str) -> str:
    return hashlib.md5("".join(parts).encode()).hexdigest()


def push(name: str, **envelope_changes: Any) -> tuple[dict[str, Any], str]:
    """(envelope with msg URL-encoded as Youzan sends it, the msg JSON)."""
    data = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    msg_json = json.dumps(data["msg"], ensure_ascii=False, separators=(",", ":"))
    msg = quote(msg_json, safe="")
    envelope = {**data["envelope"], "msg": msg, "sign": md5(CLIENT_ID, msg, CLIENT_SECRET), **envelope_changes}
    return envelope, msg_json


def encode(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope, ensure_ascii=False).encode()


def signed(body: bytes, *, secret: str = CLIENT_SECRET, upper: bool = False, event_type: str = "") -> dict[str, str]:
    digest = hashlib.md5(CLIENT_ID.encode() + body + secret.encode()).hexdigest()
    return {
        "event-sign": digest.upper() if upper else digest,
        "event-type": event_type or json.loads(body).get("type", ""),
        "client-id": CLIENT_ID,
        "content-type": "application/json",
    }


def signed_digest(body: bytes) -> str:
    return hashlib.md5(CLIENT_ID.encode() + body + CLIENT_SECRET.encode()).hexdigest()


def paid_body(**changes: Any) -> bytes:
    envelope, _ = push("youzan_trade_paid.json", **changes)
    return encode(envelope)


# --- happy paths -------------------------------------------------------------------------------
def test_trade_paid_is_paid_with_lines_and_invoice_title() -> None:
    body = paid_body()
    event = youzan.verify(body, signed(body), SECRETS, NOW)
    assert event.kind is EventKind.PAID
    assert event.platform == "youzan"
    assert event.event_id == "6dc15f0b-8682-4812-b635-ab66e199f330"
    assert event.order_id == "E20240501102033074004153"
    assert event.amount == Decimal("166.00") and isinstance(event.amount, Decimal)
    assert event.occurred_at == datetime(2024, 5, 1, 10, 20, 33, tzinfo=CHINA)
    assert event.event_type == "trade_TradePaid"
    room, breakfast = event.lines
    assert (room.sku, room.name, room.quantity, room.unit_price, room.total, room.discount) == (
        "ROOM-LAKE",
        "湖景大床房 1晚",
        Decimal(1),
        Decimal("138.00"),
        Decimal("128.00"),
        Decimal("10.00"),
    )
    assert (breakfast.sku, breakfast.quantity, breakfast.total, breakfast.discount) == (
        "BREAKFAST",
        Decimal(2),
        Decimal("38.00"),
        Decimal(0),
    )
    assert event.buyer is not None
    assert event.buyer.title == "杭州西子科技有限公司"
    assert event.buyer.tax_id == "91330106MA2B0XXXXX"
    assert event.buyer.type is BuyerType.COMPANY
    assert event.buyer.email == "finance@example.com"


def test_refund_success_is_refunded() -> None:
    envelope, _ = push("youzan_refund_success.json")
    body = encode(envelope)
    event = youzan.verify(body, signed(body), SECRETS, NOW)
    assert event.kind is EventKind.REFUNDED
    assert event.order_id == "E20240501102033074004153"
    assert event.refund_id == "201905131506420000000123"
    assert event.refund_amount == Decimal("19.00")
    assert event.event_id == "0b2d1a58-1f7e-4f57-9a6c-1c1d0f3c9e11"


def test_new_refund_message_with_object_msg() -> None:
    data = json.loads((FIXTURES / "youzan_refund_success.json").read_text(encoding="utf-8"))
    envelope = {**data["envelope"], "type": "youzan_trade_RefundSuccess", "msg": data["msg"]}
    body = encode(envelope)
    assert youzan.verify(body, signed(body), SECRETS, NOW).refund_amount == Decimal("19.00")


def test_order_without_invoice_info_has_no_buyer_and_upper_case_sign() -> None:
    data = json.loads((FIXTURES / "youzan_trade_paid.json").read_text(encoding="utf-8"))
    del data["msg"]["full_order_info"]["invoice_info"]
    msg = quote(json.dumps(data["msg"]), safe="")
    body = encode({**data["envelope"], "msg": msg})
    event = youzan.verify(body, signed(body, upper=True), SECRETS, NOW)
    assert event.buyer is None


def test_event_id_falls_back_to_type_id_version() -> None:
    body = paid_body(msg_id=None)
    event = youzan.verify(body, signed(body), SECRETS, NOW)
    assert event.event_id == "trade_TradePaid:E20240501102033074004153:1714530033"


def test_legacy_body_sign_when_allowed() -> None:
    body = paid_body()
    legacy = {**SECRETS, "allow_body_sign": True}
    event = youzan.verify(body, {"content-type": "application/json"}, legacy, NOW)
    assert event.kind is EventKind.PAID
    assert event.event_id.startswith("msg-sha256:")  # derived from the signed msg, not the unsigned msg_id
    # replaying the same signed msg under another msg_id de-duplicates to the same id
    replay = paid_body(msg_id="forged")
    assert youzan.verify(replay, {}, legacy, NOW).event_id == event.event_id


def test_secret_rotation_and_kdt_filter() -> None:
    body = paid_body()
    rotating = {"client_id": CLIENT_ID, "client_secrets": ["new", CLIENT_SECRET], "kdt_id": 56232}
    assert youzan.verify(body, signed(body), rotating, NOW).kind is EventKind.PAID
    with pytest.raises(IgnoredEvent):
        youzan.verify(body, signed(body), {**rotating, "kdt_id": "1"}, NOW)


def test_reply_is_what_youzan_expects() -> None:
    for outcome in Outcome:
        r = youzan.reply(outcome, order_key=order_key("s", youzan.NAME, "o"), status="queued")
        assert r.status == 200 and json.loads(r.body) == {"code": 0, "msg": "success"}
    assert youzan.NAME == "youzan" and youzan.SIGNS_TIMESTAMP is False


# --- rejections --------------------------------------------------------------------------------
def test_tampered_body_is_rejected() -> None:
    body = paid_body()
    headers = signed(body)
    with pytest.raises(SignatureInvalid) as err:
        youzan.verify(body.replace(b"trade_TradePaid", b"trade_TradePaix"), headers, SECRETS, NOW)
    assert err.value.code == "bad_signature"


def test_wrong_secret_is_rejected() -> None:
    body = paid_body()
    with pytest.raises(SignatureInvalid) as err:
        youzan.verify(body, signed(body, secret="wrong"), SECRETS, NOW)
    assert err.value.code == "bad_signature"


def test_body_sign_alone_is_refused_by_default() -> None:
    with pytest.raises(SignatureInvalid) as err:
        youzan.verify(paid_body(), {}, SECRETS, NOW)
    assert err.value.code == "missing_header"


def test_legacy_tampered_msg_and_wrong_sign_are_rejected() -> None:
    legacy = {**SECRETS, "allow_body_sign": True}
    envelope, _ = push("youzan_trade_paid.json")
    forged = {**envelope, "msg": envelope["msg"].replace("166.00", "1.00")}
    with pytest.raises(SignatureInvalid) as err:
        youzan.verify(encode(forged), {}, legacy, NOW)
    assert err.value.code == "bad_signature"
    for broken in ({"sign": "nothex"}, {"sign": None}, {"msg": 5}):
        with pytest.raises(SignatureInvalid) as err:
            youzan.verify(encode({**envelope, **broken}), {}, legacy, NOW)
        assert err.value.code == "missing_signature"


def test_other_client_is_rejected() -> None:
    body = paid_body(client_id="other-client")
    with pytest.raises(SignatureInvalid) as err:
        youzan.verify(body, signed(body), SECRETS, NOW)
    assert err.value.code == "app_mismatch"
    body = paid_body()
    with pytest.raises(SignatureInvalid) as err:
        youzan.verify(body, {**signed(body), "client-id": "other"}, SECRETS, NOW)
    assert err.value.code == "app_mismatch"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("", "malformed_header"),
        ("abc", "malformed_header"),
        ("g" * 32, "malformed_header"),
        ("签" * 32, "malformed_header"),
        ("\udcff" * 32, "malformed_header"),
        ("0" * 32, "bad_signature"),
    ],
)
def test_malformed_event_sign_is_signature_invalid(value: str, code: str) -> None:
    body = paid_body()
    with pytest.raises(SignatureInvalid) as err:
        youzan.verify(body, {**signed(body), "event-sign": value}, SECRETS, NOW)
    assert err.value.code == code


def test_unusable_secrets() -> None:
    body = paid_body()
    for secrets in ({"client_secret": CLIENT_SECRET}, {"client_id": CLIENT_ID}):
        with pytest.raises(SignatureInvalid) as err:
            youzan.verify(body, signed(body), secrets, NOW)
        assert err.value.code == "no_secret"


# --- genuine but irrelevant, or signed but malformed ------------------------------------------
@pytest.mark.parametrize(
    "changes",
    [
        {"test": True},
        {"test": "true"},
        {"type": "trade_TradeCreate"},
        {"type": "trade_TradeClose"},
        {"type": "trade_refund_BuyerCreated"},
        {"type": "ITEM_INFO"},
    ],
)
def test_test_pushes_and_other_types_are_ignored(changes: dict[str, Any]) -> None:
    body = paid_body(**changes)
    with pytest.raises(IgnoredEvent):
        youzan.verify(body, signed(body), SECRETS, NOW)


def test_legacy_paid_without_payment_evidence_is_ignored() -> None:
    data = json.loads((FIXTURES / "youzan_trade_paid.json").read_text(encoding="utf-8"))
    info = data["msg"]["full_order_info"]["order_info"]
    info["status"], info["pay_time"] = "WAIT_BUYER_PAY", ""
    msg = quote(json.dumps(data["msg"]), safe="")
    envelope = {**data["envelope"], "msg": msg, "sign": md5(CLIENT_ID, msg, CLIENT_SECRET)}
    with pytest.raises(IgnoredEvent):
        youzan.verify(encode(envelope), {}, {**SECRETS, "allow_body_sign": True}, NOW)


def _paid_with(mutate: Any) -> bytes:
    data = json.loads((FIXTURES / "youzan_trade_paid.json").read_text(encoding="utf-8"))
    mutate(data["msg"]["full_order_info"])
    return encode({**data["envelope"], "msg": quote(json.dumps(data["msg"]), safe="")})


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda f: f["pay_info"].update(payment="12.345"), "pay_info.payment"),
        (lambda f: f["pay_info"].update(payment=None), "pay_info.payment"),
        (lambda f: f["pay_info"].update(payment=1.005), "pay_info.payment"),
        (lambda f: f.pop("pay_info"), "pay_info"),
        (lambda f: f.pop("order_info"), "order_info"),
        (lambda f: f["orders"][0].update(payment="x"), "orders[0].payment"),
        (lambda f: f["orders"][1].update(num=0), "orders[1].num"),
        (lambda f: f.update(orders="x"), "orders"),
        (lambda f: f.update(orders=[1]), "orders[0]"),
    ],
)
def test_signed_wrong_shape_is_malformed(mutate: Any, field: str) -> None:
    body = _paid_with(mutate)
    with pytest.raises(MalformedPayload) as err:
        youzan.verify(body, signed(body), SECRETS, NOW)
    assert field in err.value.message


def test_signed_bad_msg_or_missing_type_is_malformed() -> None:
    for body, field in (
        (paid_body(msg="%7Bnot json"), "msg"),
        (paid_body(msg=""), "msg"),
        (paid_body(type=None), "type"),
    ):
        headers = {k: v for k, v in signed(body, event_type="x").items() if k != "event-type"}
        with pytest.raises(MalformedPayload) as err:
            youzan.verify(body, headers, SECRETS, NOW)
        assert field in err.value.message


def test_refund_without_refund_id_is_malformed() -> None:
    data = json.loads((FIXTURES / "youzan_refund_success.json").read_text(encoding="utf-8"))
    del data["msg"]["refund_id"]
    body = encode({**data["envelope"], "msg": quote(json.dumps(data["msg"]), safe="")})
    with pytest.raises(MalformedPayload) as err:
        youzan.verify(body, signed(body), SECRETS, NOW)
    assert "refund_id" in err.value.message


def test_signed_non_object_body_is_malformed() -> None:
    for body in (b"[]", b"not json", b"\xff"):
        with pytest.raises(MalformedPayload):
            youzan.verify(body, {"event-sign": signed_digest(body)}, SECRETS, NOW)


# --- properties --------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=512),
    headers=st.fixed_dictionaries(
        {},
        optional={
            "event-sign": st.text(max_size=40) | st.binary(min_size=16, max_size=16).map(bytes.hex),
            "event-type": st.text(max_size=20),
            "client-id": st.text(max_size=20) | st.just(CLIENT_ID),
        },
    ),
    allow_body_sign=st.booleans(),
)
def test_any_body_and_headers_raise_only_webhook_errors(
    body: bytes, headers: dict[str, str], allow_body_sign: bool
) -> None:
    with pytest.raises(WebhookError):
        youzan.verify(body, headers, {**SECRETS, "allow_body_sign": allow_body_sign}, NOW)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    envelope=st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(sorted(youzan.PAID_TYPES | youzan.REFUND_TYPES)) | json_values,
            "msg": json_values | json_values.map(lambda v: quote(json.dumps(v))),
            "msg_id": json_values,
            "client_id": st.just(CLIENT_ID) | json_values,
            "test": json_values,
            "kdt_id": json_values,
        },
    )
)
def test_signed_arbitrary_json_raises_only_webhook_errors_or_parses(envelope: dict[str, Any]) -> None:
    body = encode(envelope)
    try:
        event = youzan.verify(body, signed(body, event_type="t"), SECRETS, NOW)
    except WebhookError:
        return
    assert isinstance(event.amount, Decimal)
