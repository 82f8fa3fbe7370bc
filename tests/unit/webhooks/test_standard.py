"""Standard Webhooks: signed with the ``standardwebhooks`` reference library, verified by ours."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook

from chalicelib.domain.errors import IgnoredEvent, MalformedPayload, SignatureInvalid, TimestampOutOfWindow
from chalicelib.domain.models import BuyerType, EventKind
from chalicelib.domain.order_keys import order_key
from chalicelib.webhooks import standard
from chalicelib.webhooks.base import Outcome
from tests.unit.webhooks._fuzz import header_values, json_values, load_fixture, mutated, only_webhook_errors

NOW = datetime(2026, 11, 11, 1, 30, tzinfo=UTC)
NEW = "whsec_" + base64.b64encode(b"standard-test-secret-new-0123456789").decode()
OLD = "whsec_" + base64.b64encode(b"standard-test-secret-old-0123456789").decode()
UNKNOWN = "whsec_" + base64.b64encode(b"somebody-else-entirely-0123456789").decode()
SECRETS = {"secrets": [NEW, OLD]}
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"


def body_of(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


def signed(body: bytes, *, secret: str = NEW, msg_id: str = MSG_ID, at: datetime = NOW) -> dict[str, str]:
    signature = Webhook(secret).sign(msg_id, at, body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signature}


def paid_body() -> bytes:
    return body_of(load_fixture("standard_order_paid.json"))


# --- happy paths ---------------------------------------------------------------------------------
def test_paid_fixture_parses_to_event() -> None:
    body = paid_body()
    event = standard.verify(body, signed(body), SECRETS, NOW)
    assert event.platform == "standard"
    assert event.event_id == MSG_ID
    assert event.kind is EventKind.PAID
    assert event.order_id == "TB2026111100001"
    assert event.amount == Decimal("259.00")
    assert isinstance(event.amount, Decimal)
    assert event.currency == "CNY"
    # the line with SKU "shipping" is the labelled shipping, no longer a goods line
    assert [line.sku for line in event.lines] == ["TEA-LJ-250", "CUP-01"]
    assert (event.shipping, event.fees, event.order_discount) == (Decimal("12.00"), None, None)
    assert event.lines[0].total == Decimal("188.00")
    assert event.lines[0].discount == Decimal("10.00")
    assert event.lines[0].quantity == Decimal("2")
    assert event.lines[1].quantity == Decimal("1")
    assert sum((line.total for line in event.lines), Decimal(0)) + event.shipping == event.amount
    assert event.buyer is not None
    assert event.buyer.tax_id == "91330106MA2B0000X1"
    assert event.buyer.type is BuyerType.COMPANY
    assert event.buyer.bank == "招商银行杭州分行"
    assert event.occurred_at == datetime(2026, 11, 11, 1, 30, tzinfo=UTC)
    assert event.event_type == "order.paid"


def test_refund_fixture_parses_to_event() -> None:
    body = body_of(load_fixture("standard_order_refunded.json"))
    event = standard.verify(body, signed(body), SECRETS, NOW)
    assert event.kind is EventKind.REFUNDED
    assert event.refund_id == "RF2026111200007"
    assert event.refund_amount == Decimal("59.00")
    assert event.amount == Decimal("259.00")
    assert event.buyer is None


def test_refund_amount_defaults_order_amount() -> None:
    doc = load_fixture("standard_order_refunded.json")
    del doc["data"]["amount"]
    body = body_of(doc)
    assert standard.verify(body, signed(body), SECRETS, NOW).amount == Decimal("59.00")


def test_reference_library_agrees() -> None:
    now = datetime.now(tz=UTC).replace(microsecond=0)
    body = paid_body()
    headers = signed(body, at=now)
    Webhook(NEW).verify(body, headers)  # the reference verifier accepts what we accept
    assert standard.verify(body, headers, SECRETS, now).order_id == "TB2026111100001"


def test_cli_sample_shape_is_accepted() -> None:
    doc = {
        "type": "order.paid",
        "timestamp": int(NOW.timestamp()),
        "data": {
            "order_id": "DEMO-1",
            "amount": "88.00",
            "currency": "CNY",
            "lines": [{"sku": "LATTE-L", "name": "拿铁", "quantity": "2", "unit_price": "44.00", "total": "88.00"}],
            "buyer": {"title": "上海示例科技有限公司", "tax_id": "91350100M000100Y43", "email": "b@example.com"},
        },
    }
    body = body_of(doc)
    event = standard.verify(body, signed(body), SECRETS, NOW)
    assert event.occurred_at == NOW
    assert event.buyer is not None and event.buyer.type is None


def test_json_numbers_are_exact_decimals() -> None:
    raw = paid_body().replace(b'"amount": "259.00"', b'"amount": 259.10')
    event = standard.verify(raw, signed(raw), SECRETS, NOW)
    assert event.amount == Decimal("259.10")
    assert str(event.amount) == "259.10"


# --- signature -----------------------------------------------------------------------------------
def test_tampered_body_is_refused() -> None:
    body = paid_body()
    headers = signed(body)
    with pytest.raises(SignatureInvalid) as err:
        standard.verify(body.replace(b"259.00", b"2.59"), headers, SECRETS, NOW)
    assert err.value.code == "bad_signature"


def test_wrong_secret_is_refused() -> None:
    body = paid_body()
    with pytest.raises(SignatureInvalid) as err:
        standard.verify(body, signed(body, secret=UNKNOWN), SECRETS, NOW)
    assert err.value.code == "bad_signature"


def test_id_is_part_of_the_signature() -> None:
    body = paid_body()
    headers = {**signed(body), "webhook-id": "msg_other"}
    with pytest.raises(SignatureInvalid):
        standard.verify(body, headers, SECRETS, NOW)


@pytest.mark.parametrize("offset", [301, -301, 3600, -86400])
def test_stale_and_future_timestamps_are_refused(offset: int) -> None:
    body = paid_body()
    headers = signed(body, at=NOW + timedelta(seconds=offset))
    with pytest.raises(TimestampOutOfWindow) as err:
        standard.verify(body, headers, SECRETS, NOW)
    assert err.value.code == "stale_timestamp"


@pytest.mark.parametrize("offset", [299, -299, 0])
def test_timestamps_inside_the_window_pass(offset: int) -> None:
    body = paid_body()
    assert standard.verify(body, signed(body, at=NOW + timedelta(seconds=offset)), SECRETS, NOW)


@pytest.mark.parametrize("secret", [NEW, OLD])
def test_rotation_accepts_old_and_new(secret: str) -> None:
    body = paid_body()
    assert standard.verify(body, signed(body, secret=secret), SECRETS, NOW).order_id


def test_single_secret_form_and_unpadded_secret() -> None:
    body = paid_body()
    unpadded = NEW.rstrip("=")
    assert standard.verify(body, signed(body), {"secret": unpadded}, NOW)


def test_several_signature_entries_one_matching() -> None:
    body = paid_body()
    good = signed(body)
    bad = signed(body, secret=UNKNOWN)["webhook-signature"]
    headers = {**good, "webhook-signature": f"{bad} v1a,c29tZXRoaW5n {good['webhook-signature']}"}
    assert standard.verify(body, headers, SECRETS, NOW)


def test_no_secret_configured() -> None:
    body = paid_body()
    for secrets in ({}, {"secrets": []}, {"secret": ""}, {"secrets": ["whsec_"]}):
        with pytest.raises(SignatureInvalid) as err:
            standard.verify(body, signed(body), secrets, NOW)
        assert err.value.code == "no_secret"


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header(missing: str) -> None:
    body = paid_body()
    headers = signed(body)
    del headers[missing]
    with pytest.raises(SignatureInvalid) as err:
        standard.verify(body, headers, SECRETS, NOW)
    assert err.value.code == "missing_header"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("webhook-signature", "abc"),
        ("webhook-signature", "v1"),
        ("webhook-signature", "v1,!!!not-base64!!!"),
        ("webhook-signature", "v1,YWJj"),
        ("webhook-signature", "v2,YWJj"),
        ("webhook-signature", " "),
        ("webhook-signature", "v1," + "A" * 9000),
        ("webhook-signature", " ".join(["v1,YWJj"] * 40)),
        ("webhook-signature", "v1,签名"),
        ("webhook-timestamp", "abc"),
        ("webhook-timestamp", "1794360600.5"),
        ("webhook-timestamp", "-5"),
        ("webhook-timestamp", "9" * 40),
        ("webhook-timestamp", "١٧٩٤٣٦٠٦٠٠"),
        ("webhook-timestamp", "1_794_360_600"),
        ("webhook-id", "msg with spaces"),
        ("webhook-id", "消息"),
        ("webhook-id", "x" * 300),
    ],
)
def test_malformed_headers_raise_signature_invalid(name: str, value: str) -> None:
    body = paid_body()
    headers = {**signed(body), name: value}
    with pytest.raises(SignatureInvalid) as err:
        standard.verify(body, headers, SECRETS, NOW)
    assert err.value.code in {"malformed_header", "bad_signature", "missing_header"}
    assert type(err.value) in {SignatureInvalid}


# --- payload -------------------------------------------------------------------------------------
def test_other_types_are_ignored() -> None:
    doc = load_fixture("standard_order_paid.json")
    doc["type"] = "order.created"
    body = body_of(doc)
    with pytest.raises(IgnoredEvent):
        standard.verify(body, signed(body), SECRETS, NOW)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["data"].pop("order_id"), "data.order_id"),
        (lambda d: d["data"].pop("amount"), "data.amount"),
        (lambda d: d.pop("data"), "data"),
        (lambda d: d.pop("type"), "type"),
        (lambda d: d["data"]["lines"][0].pop("total"), "data.lines[0].total"),
        (lambda d: d["data"].update(amount="abc"), "data.amount"),
        (lambda d: d["data"].update(amount=True), "data.amount"),
        (lambda d: d["data"].update(amount="-1.00"), "data.amount"),
        (lambda d: d["data"].update(amount="1e999999"), "data.amount"),
        (lambda d: d["data"].update(currency="yuan"), "data.currency"),
        (lambda d: d["data"].update(lines="none"), "data.lines"),
        (lambda d: d["data"]["buyer"].update(type="robot"), "data.buyer.type"),
        (lambda d: d["data"].update(order_id={"x": 1}), "data.order_id"),
    ],
)
def test_signed_but_malformed_payload_names_the_field(mutate: Any, field: str) -> None:
    doc = load_fixture("standard_order_paid.json")
    mutate(doc)
    body = body_of(doc)
    with pytest.raises(MalformedPayload) as err:
        standard.verify(body, signed(body), SECRETS, NOW)
    assert field in str(err.value)


def test_refund_without_refund_id_names_it() -> None:
    doc = load_fixture("standard_order_refunded.json")
    del doc["data"]["refund_id"]
    body = body_of(doc)
    with pytest.raises(MalformedPayload, match=r"data\.refund_id"):
        standard.verify(body, signed(body), SECRETS, NOW)


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1,2]", b"\xff\xfe", b'{"type": 5}', b"null"])
def test_signed_garbage_is_malformed(raw: bytes) -> None:
    msg = "msg_x"
    ts = str(int(NOW.timestamp()))
    import hashlib
    import hmac

    key = base64.b64decode(NEW.removeprefix("whsec_"))
    sig = base64.b64encode(hmac.new(key, f"{msg}.{ts}.".encode() + raw, hashlib.sha256).digest()).decode()
    headers = {"webhook-id": msg, "webhook-timestamp": ts, "webhook-signature": f"v1,{sig}"}
    with pytest.raises(MalformedPayload):
        standard.verify(raw, headers, SECRETS, NOW)


def test_reply_is_2xx_json() -> None:
    key = order_key("s1", standard.NAME, "A1")
    queued = standard.reply(Outcome.QUEUED, order_key=key, status="queued")
    assert queued.status == 202
    assert json.loads(queued.body) == {"order_key": key, "status": "queued", "outcome": "queued"}
    for outcome in (Outcome.DUPLICATE, Outcome.IGNORED):
        again = standard.reply(outcome, order_key=key, status="issued")
        assert again.status == 200
        assert again.content_type == "application/json"
        assert json.loads(again.body)["outcome"] == outcome.value


# --- properties ----------------------------------------------------------------------------------
HEADER_NAMES = ["webhook-id", "webhook-timestamp", "webhook-signature"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=512), headers=st.dictionaries(st.sampled_from(HEADER_NAMES), header_values))
def test_any_input_raises_only_webhook_errors(body: bytes, headers: dict[str, str]) -> None:
    only_webhook_errors(lambda: standard.verify(body, headers, SECRETS, NOW))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=st.one_of(json_values, mutated(load_fixture("standard_order_paid.json"))))
def test_any_signed_json_raises_only_webhook_errors(doc: Any) -> None:
    body = json.dumps(doc, ensure_ascii=False).encode()
    only_webhook_errors(lambda: standard.verify(body, signed(body), SECRETS, NOW))


@settings(max_examples=100, deadline=None)
@given(doc=mutated(load_fixture("standard_order_refunded.json")))
def test_any_signed_refund_variant_raises_only_webhook_errors(doc: Any) -> None:
    body = json.dumps(doc, ensure_ascii=False).encode()
    only_webhook_errors(lambda: standard.verify(body, signed(body), SECRETS, NOW))
