"""Stripe: headers built with the ``stripe`` library's own signer, cross-checked with its verifier."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.domain.errors import IgnoredEvent, MalformedPayload, SignatureInvalid, TimestampOutOfWindow
from chalicelib.domain.models import EventKind
from chalicelib.domain.order_keys import order_key
from chalicelib.webhooks import stripe as stripe_hook
from chalicelib.webhooks.base import Outcome
from tests.unit.webhooks._fuzz import header_values, json_values, load_fixture, mutated, only_webhook_errors

NOW = datetime(2026, 11, 11, 1, 30, tzinfo=UTC)
NEW = "whsec_test_new_8d0c7b1f2e3a4c5d6e7f8091a2b3c4d5"
OLD = "whsec_test_old_0f1e2d3c4b5a69788796a5b4c3d2e1f0"
UNKNOWN = "whsec_test_unknown_00000000000000000000000000"
SECRETS = {"secrets": [NEW, OLD]}


def body_of(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, indent=2).encode()


def signed(body: bytes, *, secret: str = NEW, at: datetime = NOW) -> dict[str, str]:
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=int(at.timestamp()))
    return {"stripe-signature": header}


def fixture_body(name: str = "stripe_checkout_session_completed.json") -> bytes:
    return body_of(load_fixture(name))


# --- happy paths ---------------------------------------------------------------------------------
def test_checkout_session_completed() -> None:
    body = fixture_body()
    event = stripe_hook.verify(body, signed(body), SECRETS, NOW)
    assert event.platform == "stripe"
    assert event.event_id == "evt_1QfX2bCNYdemo0001"
    assert event.kind is EventKind.PAID
    assert event.order_id == "SHOP-10086"  # metadata.order_id
    assert event.amount == Decimal("259.00")  # 25900 fen
    assert event.currency == "CNY"
    assert event.buyer is not None
    assert event.buyer.tax_id == "91330106MA2B0000X1"
    assert event.buyer.title == "杭州示例贸易有限公司"
    assert event.buyer.email == "finance@example.com"
    assert event.occurred_at == datetime.fromtimestamp(1794360000, tz=UTC)
    assert event.event_type == "checkout.session.completed"


def test_stripe_library_agrees() -> None:
    body = fixture_body()
    headers = signed(body)
    stripe.Webhook.construct_event(body, headers["stripe-signature"], NEW, tolerance=0)
    assert stripe_hook.verify(body, headers, SECRETS, NOW).order_id == "SHOP-10086"


def test_stripe_library_rejects_what_we_reject() -> None:
    body = fixture_body()
    headers = signed(body, secret=UNKNOWN)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, headers["stripe-signature"], NEW, tolerance=0)
    with pytest.raises(SignatureInvalid):
        stripe_hook.verify(body, headers, SECRETS, NOW)


def test_session_without_metadata_uses_payment_intent_and_no_tax_id_means_no_title() -> None:
    doc = load_fixture("stripe_checkout_session_completed.json")
    obj = doc["data"]["object"]
    obj["metadata"] = {}
    obj["customer_details"]["tax_ids"] = [{"type": "eu_vat", "value": "DE123456789"}]
    body = body_of(doc)
    event = stripe_hook.verify(body, signed(body), SECRETS, NOW)
    assert event.order_id == "pi_3QfX2bCNYdemo"
    assert event.buyer is not None
    assert event.buyer.tax_id is None
    assert event.buyer.title is None
    assert event.buyer.email == "finance@example.com"


def test_session_without_payment_intent_uses_session_id() -> None:
    doc = load_fixture("stripe_checkout_session_completed.json")
    obj = doc["data"]["object"]
    obj["metadata"] = {}
    obj["payment_intent"] = None
    body = body_of(doc)
    assert stripe_hook.verify(body, signed(body), SECRETS, NOW).order_id == "cs_test_a1b2c3d4e5f6"


def test_business_name_wins_as_title() -> None:
    doc = load_fixture("stripe_checkout_session_completed.json")
    doc["data"]["object"]["customer_details"]["business_name"] = "示例公司"
    body = body_of(doc)
    event = stripe_hook.verify(body, signed(body), SECRETS, NOW)
    assert event.buyer is not None and event.buyer.title == "示例公司"


@pytest.mark.parametrize(
    ("currency", "minor", "major"),
    [
        ("cny", 25900, Decimal("259.00")),
        ("jpy", 2590, Decimal("2590")),
        ("kwd", 25905, Decimal("25.905")),
        ("usd", 1, Decimal("0.01")),
    ],
)
def test_minor_units_use_the_currency_exponent(currency: str, minor: int, major: Decimal) -> None:
    doc = load_fixture("stripe_checkout_session_completed.json")
    doc["data"]["object"].update(currency=currency, amount_total=minor)
    body = body_of(doc)
    event = stripe_hook.verify(body, signed(body), SECRETS, NOW)
    assert event.amount == major
    assert event.currency == currency.upper()


def test_payment_intent_succeeded() -> None:
    body = fixture_body("stripe_payment_intent_succeeded.json")
    event = stripe_hook.verify(body, signed(body), SECRETS, NOW)
    assert event.kind is EventKind.PAID
    assert event.order_id == "pi_3QfX2bCNYdemo"
    assert event.amount == Decimal("88.00")
    assert event.buyer is not None and event.buyer.email == "buyer@example.com"


def test_charge_refunded_uses_newest_refund() -> None:
    body = fixture_body("stripe_charge_refunded.json")
    event = stripe_hook.verify(body, signed(body), SECRETS, NOW)
    assert event.kind is EventKind.REFUNDED
    assert event.order_id == "SHOP-10086"
    assert event.amount == Decimal("259.00")
    assert event.refund_id == "re_3QfX2bCNYdemo2"
    assert event.refund_amount == Decimal("59.00")


def test_charge_refunded_without_refund_list_uses_previous_attributes() -> None:
    doc = load_fixture("stripe_charge_refunded.json")
    del doc["data"]["object"]["refunds"]  # API versions since 2022-11-15 omit it
    doc["data"]["object"]["metadata"] = {}
    body = body_of(doc)
    event = stripe_hook.verify(body, signed(body), SECRETS, NOW)
    assert event.order_id == "pi_3QfX2bCNYdemo"
    assert event.refund_amount == Decimal("59.00")  # 8900 - 3000
    assert event.refund_id == "ch_3QfX2bCNYdemo:8900"


def test_charge_refunded_without_any_history_uses_amount_refunded() -> None:
    doc = load_fixture("stripe_charge_refunded.json")
    del doc["data"]["object"]["refunds"]
    del doc["data"]["previous_attributes"]
    body = body_of(doc)
    assert stripe_hook.verify(body, signed(body), SECRETS, NOW).refund_amount == Decimal("89.00")


# --- signature -----------------------------------------------------------------------------------
def test_tampered_body_is_refused() -> None:
    body = fixture_body()
    with pytest.raises(SignatureInvalid) as err:
        stripe_hook.verify(body.replace(b"25900", b"100"), signed(body), SECRETS, NOW)
    assert err.value.code == "bad_signature"


@pytest.mark.parametrize("offset", [-301, -7200])
def test_a_stale_timestamp_is_refused(offset: int) -> None:
    body = fixture_body()
    with pytest.raises(TimestampOutOfWindow):
        stripe_hook.verify(body, signed(body, at=NOW + timedelta(seconds=offset)), SECRETS, NOW)


@pytest.mark.parametrize("offset", [-300, 301, 600, 7200])
def test_the_age_is_checked_as_stripes_library_checks_it(offset: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stripe's ``verify_header`` refuses only events older than the tolerance: one signed ahead of our
    clock (a sender whose clock runs fast) is accepted, by the library and by us."""
    import time

    body = fixture_body()
    header = signed(body, at=NOW + timedelta(seconds=offset))
    monkeypatch.setattr(time, "time", NOW.timestamp)
    assert stripe.WebhookSignature.verify_header(body.decode(), header["stripe-signature"], NEW, tolerance=300)
    assert stripe_hook.verify(body, header, SECRETS, NOW).order_id


@pytest.mark.parametrize("secret", [NEW, OLD])
def test_rotation_accepts_both(secret: str) -> None:
    body = fixture_body()
    assert stripe_hook.verify(body, signed(body, secret=secret), SECRETS, NOW)


def test_unknown_secret_refused_and_single_secret_form() -> None:
    body = fixture_body()
    with pytest.raises(SignatureInvalid):
        stripe_hook.verify(body, signed(body, secret=UNKNOWN), SECRETS, NOW)
    assert stripe_hook.verify(body, signed(body, secret=OLD), {"secret": OLD}, NOW)


def test_several_v1_entries_one_matching() -> None:
    body = fixture_body()
    good = signed(body)["stripe-signature"]
    bad = signed(body, secret=UNKNOWN)["stripe-signature"].split(",")[1]
    header = f"{good.split(',')[0]},{bad},v0=deadbeef,{good.split(',')[1]}"
    assert stripe_hook.verify(body, {"stripe-signature": header}, SECRETS, NOW)


def test_no_secret_configured() -> None:
    body = fixture_body()
    with pytest.raises(SignatureInvalid) as err:
        stripe_hook.verify(body, signed(body), {"secrets": []}, NOW)
    assert err.value.code == "no_secret"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        "t=1794360600",
        "v1=" + "a" * 64,
        "t=abc,v1=" + "a" * 64,
        "t=-1,v1=" + "a" * 64,
        "t=" + "9" * 40 + ",v1=" + "a" * 64,
        "t=١٧٩٤٣٦٠٦٠٠,v1=" + "a" * 64,
        "t=1794360600,t=1794360600,v1=" + "a" * 64,
        "t=1794360600,v1=nothex",
        "t=1794360600,v1=" + "a" * 63,
        "t=1794360600,v1=" + "ü" * 64,
        "t=1794360600," + ",".join(["v1=" + "a" * 64] * 40),
        "t=1794360600,v1=" + "a" * 9000,
        "t=1794360600,,v1=" + "a" * 64,
        "t=1794360600,v1=" + "a" * 64,  # well-formed, wrong
    ],
)
def test_malformed_headers_raise_signature_invalid(value: str) -> None:
    body = fixture_body()
    with pytest.raises(SignatureInvalid) as err:
        stripe_hook.verify(body, {"stripe-signature": value}, SECRETS, NOW)
    assert err.value.code in {"malformed_header", "bad_signature", "missing_header"}
    assert type(err.value) is SignatureInvalid


# --- payload -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(type="customer.created"),
        lambda d: d.update(type="payment_intent.payment_failed"),
        lambda d: d["data"]["object"].update(payment_status="unpaid"),
        lambda d: d["data"]["object"].update(payment_status="no_payment_required"),
    ],
)
def test_irrelevant_events_are_ignored(mutate: Any) -> None:
    doc = load_fixture("stripe_checkout_session_completed.json")
    mutate(doc)
    body = body_of(doc)
    with pytest.raises(IgnoredEvent):
        stripe_hook.verify(body, signed(body), SECRETS, NOW)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("id"), "id"),
        (lambda d: d.pop("data"), "data"),
        (lambda d: d["data"].pop("object"), "data.object"),
        (lambda d: d["data"]["object"].pop("amount_total"), "data.object.amount_total"),
        (lambda d: d["data"]["object"].update(amount_total="25900"), "data.object.amount_total"),
        (lambda d: d["data"]["object"].update(amount_total=259.0), "data.object.amount_total"),
        (lambda d: d["data"]["object"].update(amount_total=-1), "data.object.amount_total"),
        (lambda d: d["data"]["object"].pop("currency"), "data.object.currency"),
        (lambda d: d["data"]["object"].update(currency="renminbi"), "data.object.currency"),
    ],
)
def test_malformed_payload_names_the_field(mutate: Any, field: str) -> None:
    doc = load_fixture("stripe_checkout_session_completed.json")
    mutate(doc)
    body = body_of(doc)
    with pytest.raises(MalformedPayload) as err:
        stripe_hook.verify(body, signed(body), SECRETS, NOW)
    assert field in str(err.value)


def test_refund_without_amount_refunded_names_it() -> None:
    doc = load_fixture("stripe_charge_refunded.json")
    del doc["data"]["object"]["amount_refunded"]
    body = body_of(doc)
    with pytest.raises(MalformedPayload, match="amount_refunded"):
        stripe_hook.verify(body, signed(body), SECRETS, NOW)


def test_reply_is_2xx_json() -> None:
    key = order_key("s1", stripe_hook.NAME, "A1")
    queued = stripe_hook.reply(Outcome.QUEUED, order_key=key, status="queued")
    assert queued.status == 202
    assert json.loads(queued.body) == {"order_key": key, "status": "queued", "outcome": "queued"}
    for outcome in (Outcome.DUPLICATE, Outcome.IGNORED):
        again = stripe_hook.reply(outcome, order_key=key, status="issued")
        assert again.status == 200
        assert again.content_type == "application/json"
        assert json.loads(again.body)["outcome"] == outcome.value


# --- properties ----------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=512), headers=st.dictionaries(st.just("stripe-signature"), header_values))
def test_any_input_raises_only_webhook_errors(body: bytes, headers: dict[str, str]) -> None:
    only_webhook_errors(lambda: stripe_hook.verify(body, headers, SECRETS, NOW))


FIXTURES = [
    load_fixture("stripe_checkout_session_completed.json"),
    load_fixture("stripe_payment_intent_succeeded.json"),
    load_fixture("stripe_charge_refunded.json"),
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=st.one_of(json_values, *[mutated(f) for f in FIXTURES]))
def test_any_signed_json_raises_only_webhook_errors(doc: Any) -> None:
    body = json.dumps(doc, ensure_ascii=False).encode()
    only_webhook_errors(lambda: stripe_hook.verify(body, signed(body), SECRETS, NOW))
