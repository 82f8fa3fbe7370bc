"""Rejected orders through POST /webhooks/{platform}/{store_id} (chalice.test.Client, moto behind it).

Every signed, parseable event is recorded; content that cannot be used becomes violations (field,
code, Chinese and English message) on a ``rejected`` record; each store and platform chooses whether a
rejected order is refused (422) or acknowledged (the platform's success answer); a burst of rejections
alerts the alarm topic once.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.domain.models import RejectionReply
from chalicelib.domain.order_keys import event_order_key, order_key
from tests.app.conftest import PLATFORM_STORE, signed, standard_event
from tests.support import platform_events as pe

URL = "/webhooks/standard/demo-shanghai"
REFUSING = ("standard", "stripe", "shopify", "woocommerce")
ACKNOWLEDGING = ("wechatpay", "alipay", "douyin", "youzan")


def ledger(stack: Any) -> Any:
    from chalicelib.adapters.ledger import Ledger

    return Ledger(stack.env["LEDGER_TABLE"])


def queued(stack: Any, aws: Any) -> list[dict[str, Any]]:
    reply = aws.client("sqs").receive_message(
        QueueUrl=stack.env["ISSUE_QUEUE_URL"], MaxNumberOfMessages=10, WaitTimeSeconds=0
    )
    return [json.loads(m["Body"]) for m in reply.get("Messages", [])]


def change_store(store_id: str, **changes: Any) -> None:
    import app as app_module

    stores = app_module._ingest().stores
    stores.put(stores.get(store_id).model_copy(update=changes))


def text(response: Any) -> str:
    return response.body.decode() if isinstance(response.body, bytes) else response.body


# --- content that cannot be used is a rejected record, not a bare 422 -----------------------------
@pytest.mark.parametrize(("amount", "detail"), [("-5.00", "out of range"), ("lots", "decimal amount")])
def test_a_negative_or_non_numeric_amount_is_recorded_as_rejected_with_a_bilingual_violation(
    client: Any, seeded: Any, aws: Any, amount: str, detail: str
) -> None:
    order_id = f"N-{uuid.uuid4().hex[:8]}"
    body, headers = signed(standard_event(order_id, amount=amount))
    r = client.http.post(URL, body=body, headers=headers)

    key = order_key("demo-shanghai", "standard", order_id)
    assert r.status_code == 422, r.body
    assert r.json_body["order_key"] == key and r.json_body["status"] == "rejected"
    [error] = r.json_body["errors"]
    assert (error["field"], error["code"]) == ("data.amount", "event_amount_invalid")
    assert "金额" in error["message"] and detail in error["message_en"]
    record = ledger(seeded).get_order(key)
    assert record.status == "rejected" and record.violations == r.json_body["errors"]
    read = {"platform": "standard", "event_id": headers["webhook-id"], "kind": "paid", "order_id": order_id}
    assert record.payload["event"] == read  # what could be read of it, for the operator's correction
    assert queued(seeded, aws) == []


@pytest.mark.parametrize("platform", pe.PLATFORMS)
def test_every_platform_records_a_signed_order_it_cannot_use_and_answers_as_the_store_chose(
    platform_client: Any, stack: Any, aws: Any, platform: str
) -> None:
    order_id = f"{platform}-{uuid.uuid4().hex[:8]}"
    key = order_key(PLATFORM_STORE, platform, order_id)
    r = platform_client.http.post(
        f"/webhooks/{platform}/{PLATFORM_STORE}", **_delivery(pe.paid(platform, order_id, "-5.00"))
    )

    if platform in REFUSING:  # integrators read the answer: refused, every violation listed
        assert r.status_code == 422, r.body
        assert r.json_body["order_key"] == key
        assert r.json_body["errors"][0]["code"] == "event_amount_invalid"
    else:  # their retries cannot fix it: the platform's own success answer
        expected = pe.expected_reply(platform, order_key=key)
        assert (r.status_code, text(r) if isinstance(expected.body, str) else json.loads(text(r))) == (
            expected.status,
            expected.body,
        )
    record = ledger(stack).get_order(key)
    assert record is not None and record.status == "rejected"
    assert {"field", "code", "message", "message_en"} <= set(record.violations[0])
    assert queued(stack, aws) == []


def _delivery(built: tuple[bytes, dict[str, str]]) -> dict[str, Any]:
    body, headers = built
    return {"body": body, "headers": headers}


def test_the_store_chooses_the_answer_per_platform(platform_client: Any, stack: Any) -> None:
    change_store(
        PLATFORM_STORE,
        rejection_replies={"standard": RejectionReply.ACKNOWLEDGE, "wechatpay": RejectionReply.REFUSE},
    )
    acked = platform_client.http.post(
        f"/webhooks/standard/{PLATFORM_STORE}", **_delivery(pe.paid("standard", "CH-1", "-1.00"))
    )
    assert acked.status_code == 200, acked.body
    assert acked.json_body["status"] == acked.json_body["outcome"] == "rejected"
    assert acked.json_body["order_key"] == order_key(PLATFORM_STORE, "standard", "CH-1")
    assert acked.json_body["errors"][0]["field"] == "data.amount"

    refused = platform_client.http.post(
        f"/webhooks/wechatpay/{PLATFORM_STORE}", **_delivery(pe.paid("wechatpay", "CH-2", "-1.00"))
    )
    assert refused.status_code == 422 and refused.json_body["errors"][0]["field"] == "resource.amount.total"
    for platform, order_id in (("standard", "CH-1"), ("wechatpay", "CH-2")):
        assert ledger(stack).get_order(order_key(PLATFORM_STORE, platform, order_id)).status == "rejected"


def test_a_rule_violation_on_an_acknowledging_platform_is_recorded_and_acknowledged(
    platform_client: Any, stack: Any, aws: Any
) -> None:
    change_store(PLATFORM_STORE, single_invoice_limit=Decimal("1.00"))  # a rule of any kind: here the invoice limit
    r = platform_client.http.post(
        f"/webhooks/alipay/{PLATFORM_STORE}", **_delivery(pe.paid("alipay", "LIM-1", "88.00"))
    )
    assert (r.status_code, text(r)) == (200, "success")
    record = ledger(stack).get_order(order_key(PLATFORM_STORE, "alipay", "LIM-1"))
    assert record.status == "rejected" and record.violations[0]["code"] == "single_invoice_limit"
    assert queued(stack, aws) == []


def test_an_event_without_a_readable_order_id_is_recorded_under_its_event_id_and_says_so(
    client: Any, seeded: Any
) -> None:
    event = standard_event("X")
    del event["data"]["order_id"]
    body, headers = signed(event)
    r = client.http.post(URL, body=body, headers=headers)

    key = event_order_key("demo-shanghai", "standard", headers["webhook-id"])
    assert r.status_code == 422 and r.json_body["order_key"] == key
    codes = {(e["field"], e["code"]) for e in r.json_body["errors"]}
    assert codes == {("data.order_id", "event_field_missing"), ("order_id", "event_order_id_unreadable")}
    assert ledger(seeded).get_order(key).status == "rejected"

    garbage, garbage_headers = signed(b"{not json")  # nothing but the signed event id can be read
    r = client.http.post(URL, body=garbage, headers=garbage_headers)
    key = event_order_key("demo-shanghai", "standard", garbage_headers["webhook-id"])
    assert r.status_code == 422 and r.json_body["order_key"] == key
    assert r.json_body["errors"][0]["code"] == "event_unreadable"
    assert ledger(seeded).get_order(key).payload["body"] == "{not json"


def test_an_unusable_redelivery_of_an_accepted_order_is_still_a_duplicate(client: Any, seeded: Any, aws: Any) -> None:
    body, headers = signed(standard_event("DUP-1"))
    assert client.http.post(URL, body=body, headers=headers).status_code == 202
    body, headers = signed(standard_event("DUP-1", amount="-1"))  # the order again, now broken
    again = client.http.post(URL, body=body, headers=headers)
    assert again.status_code == 200 and again.json_body["outcome"] == "duplicate"
    assert ledger(seeded).get_order(order_key("demo-shanghai", "standard", "DUP-1")).status == "queued"


def test_one_bad_message_of_a_batch_is_recorded_and_the_good_one_queued(
    platform_client: Any, stack: Any, aws: Any
) -> None:
    import hashlib

    good_body, headers = pe.paid("douyin", "DY-GOOD", "88.00")
    bad_body, _ = pe.paid("douyin", "DY-BAD", "-5.00")
    body = json.dumps(json.loads(good_body) + json.loads(bad_body)).encode()  # one push, two messages
    signature = pe.DOUYIN_APP_KEY.encode() + body + pe.DOUYIN_APP_SECRET.encode()  # as 抖店 signs a push
    headers = {**headers, "event-sign": hashlib.md5(signature, usedforsecurity=False).hexdigest()}
    r = platform_client.http.post(f"/webhooks/douyin/{PLATFORM_STORE}", body=body, headers=headers)

    assert r.status_code == 200 and json.loads(text(r)) == {"code": 0, "msg": "success"}
    good, bad = (order_key(PLATFORM_STORE, "douyin", o) for o in ("DY-GOOD", "DY-BAD"))
    assert ledger(stack).get_order(good).status == "queued"
    assert ledger(stack).get_order(bad).status == "rejected"
    assert queued(stack, aws) == [{"order_key": good, "kind": "paid"}]


# --- held orders say so ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "reason"),
    [({"pilot_percentage": 0}, "pilot_share"), ({"active": False}, "store_inactive")],
)
def test_a_held_order_is_answered_held_and_why(
    client: Any, seeded: Any, aws: Any, changes: dict[str, Any], reason: str
) -> None:
    change_store("demo-shanghai", **changes)
    body, headers = signed(standard_event("H-1"))
    r = client.http.post(URL, body=body, headers=headers)
    assert r.status_code == 202, r.body
    assert r.json_body["status"] == r.json_body["outcome"] == "held"
    assert r.json_body["reason"] == reason and "by hand" in r.json_body["message"]
    assert ledger(seeded).get_order(order_key("demo-shanghai", "standard", "H-1")).status == "held"
    assert queued(seeded, aws) == []


# --- the burst alert ---------------------------------------------------------------------------------
def test_a_burst_of_rejections_alerts_once_naming_the_store_and_the_count(
    client: Any, seeded: Any, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app as app_module
    from chalicelib import config

    monkeypatch.setenv("REJECTION_ALERT_THRESHOLD", "3")
    monkeypatch.setenv("REJECTION_ALERT_MINUTES", "10")
    config.settings.cache_clear()
    app_module._ingest.cache_clear()
    sns, sqs = aws.client("sns"), aws.client("sqs")
    inbox = sqs.create_queue(QueueName=f"alerts-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=seeded.env["ALARM_TOPIC_ARN"], Protocol="sqs", Endpoint=inbox_arn)

    tax_id = "91350100M000100Y43"
    accepted = signed(standard_event("B-OK"))
    assert client.http.post(URL, body=accepted[0], headers=accepted[1]).status_code == 202
    for i in range(4):
        bad = standard_event(f"B-{i}", buyer={"title": "某公司", "tax_id": tax_id, "type": "company"}, amount="-1")
        body, headers = signed(bad)
        assert client.http.post(URL, body=body, headers=headers).status_code == 422

    alerts = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    assert len(alerts) == 1  # the third rejection within the window; not the fourth
    note = json.loads(alerts[0]["Body"])
    assert "demo-shanghai" in note["Subject"] and "3 orders" in note["Subject"]
    assert "demo-shanghai:standard:B-2" in note["Message"] and "einvoice orders list demo-shanghai" in note["Message"]
    assert tax_id not in note["Message"] and tax_id not in note["Subject"]
    counters = aws.client("dynamodb").scan(
        TableName=seeded.env["LEDGER_TABLE"],
        FilterExpression="begins_with(pk, :p)",
        ExpressionAttributeValues={":p": {"S": "rejections#"}},
    )["Items"]
    assert [int(c["n"]["N"]) for c in counters] == [4]  # only rejections were counted


# --- Stripe: the age only, as Stripe's library checks it ---------------------------------------------
@pytest.mark.parametrize("offset", [-400, -200, 600, 3600])
def test_stripes_timestamp_is_checked_as_stripes_library_checks_it(platform_client: Any, offset: int) -> None:
    import time

    import stripe

    intent = {
        "id": f"pi_{uuid.uuid4().hex[:16]}",
        "object": "payment_intent",
        "amount_received": 8800,
        "currency": "cny",
        "metadata": {"order_id": f"ST-{offset}"},
    }
    event = {"id": f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "type": "payment_intent.succeeded"}
    body = json.dumps({**event, "created": int(time.time()), "data": {"object": intent}}).encode()
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), pe.STRIPE_SECRET, timestamp=int(time.time()) + offset
    )
    try:
        library_accepts = stripe.WebhookSignature.verify_header(body.decode(), header, pe.STRIPE_SECRET, tolerance=300)
    except stripe.SignatureVerificationError:
        library_accepts = False

    r = platform_client.http.post(
        f"/webhooks/stripe/{PLATFORM_STORE}",
        body=body,
        headers={"content-type": "application/json", "stripe-signature": header},
    )
    assert library_accepts is (offset > -300)  # an event 10 minutes in the future is accepted by Stripe
    if library_accepts:
        assert r.status_code == 202, r.body
    else:
        assert (r.status_code, r.json_body) == (401, {"error": "invalid_signature", "reason": "stale_timestamp"})


# --- every route answers errors in our own shape -------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("GET", URL, "POST"), ("PUT", URL, "POST"), ("DELETE", URL, "POST"), ("POST", "/health", "GET")],
)
def test_a_wrong_method_is_405_in_our_shape_with_allow(client: Any, method: str, path: str, allowed: str) -> None:
    r = client.http.request(method, path, body=b"{}", headers={"content-type": "application/json"})
    assert r.status_code == 405
    assert r.json_body["error"] == "method_not_allowed" and method in r.json_body["message"]
    assert r.headers["Allow"] == allowed


@pytest.mark.parametrize("path", ["/nope", "/webhooks/standard", "/webhooks/standard/demo-shanghai/extra", "/a/b/c/d"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_an_unknown_route_is_404_in_our_shape(client: Any, method: str, path: str) -> None:
    r = client.http.request(method, path, body=b"{}", headers={"content-type": "application/json"})
    assert r.status_code == 404
    assert r.json_body == {"error": "not_found", "message": f"no route {path}"}


def test_an_unsupported_media_type_is_415_in_our_shape(client: Any) -> None:
    r = client.http.post(URL, body=b"<order/>", headers={"content-type": "application/xml"})
    assert r.status_code == 415
    assert r.json_body == {"error": "unsupported_media_type", "message": "Unsupported media type: application/xml"}
