"""POST /webhooks/{platform}/{store_id} through chalice.test.Client, with moto behind it."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest

from chalicelib.domain.order_keys import order_key
from tests.app.conftest import signed, standard_event

URL = "/webhooks/standard/demo-shanghai"


def key(order_id: str) -> str:
    return order_key("demo-shanghai", "standard", order_id)


def queued_messages(stack: Any, aws: Any) -> list[dict[str, Any]]:
    sqs = aws.client("sqs")
    reply = sqs.receive_message(QueueUrl=stack.env["ISSUE_QUEUE_URL"], MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [json.loads(m["Body"]) for m in reply.get("Messages", [])]


def test_a_genuine_payment_is_queued_and_answered_202(client: Any, seeded: Any, aws: Any) -> None:
    body, headers = signed(standard_event("A-1"))
    r = client.http.post(URL, body=body, headers=headers)
    assert r.status_code == 202, r.body
    assert r.json_body["order_key"] == key("A-1") == "demo-shanghai:standard:A-1"
    assert r.json_body["status"] == "queued"
    assert queued_messages(seeded, aws) == [{"order_key": key("A-1"), "kind": "paid"}]


def test_the_same_delivery_twice_is_a_duplicate_with_the_existing_status(client: Any, seeded: Any, aws: Any) -> None:
    body, headers = signed(standard_event("A-2"))
    assert client.http.post(URL, body=body, headers=headers).status_code == 202
    again = client.http.post(URL, body=body, headers=headers)
    assert again.status_code == 200
    assert again.json_body["status"] == "queued"
    assert len(queued_messages(seeded, aws)) == 1


def test_a_duplicate_of_an_accepted_order_that_the_store_now_refuses_is_200_not_422(
    client: Any, seeded: Any, aws: Any
) -> None:
    """The order was accepted; then the store changed (here: a single-invoice limit below it). Its
    re-delivery must stay a duplicate: a 422 would make the platform retry it for days."""
    import app as app_module

    event = standard_event("A-9")
    body, headers = signed(event)
    assert client.http.post(URL, body=body, headers=headers).status_code == 202
    stores = app_module._ingest().stores
    stores.put(stores.get("demo-shanghai").model_copy(update={"single_invoice_limit": Decimal("1.00")}))
    new_body, new_headers = signed(standard_event("A-10"))
    assert client.http.post(URL, body=new_body, headers=new_headers).status_code == 422  # refuses a new order …

    for delivery in ((body, headers), signed(event)):  # the same delivery, and the order re-signed
        again = client.http.post(URL, body=delivery[0], headers=delivery[1])
        assert again.status_code == 200, again.body  # … but not the one already accepted
        assert again.json_body == {"order_key": key("A-9"), "status": "queued", "outcome": "duplicate"}
    assert queued_messages(seeded, aws) == [{"order_key": key("A-9"), "kind": "paid"}]


def test_a_rejected_order_may_be_resubmitted_corrected(client: Any, seeded: Any, aws: Any) -> None:
    bad = standard_event("A-11", buyer={"title": "某公司", "tax_id": "12345", "type": "company"})
    body, headers = signed(bad)
    assert client.http.post(URL, body=body, headers=headers).status_code == 422
    assert client.http.post(URL, body=body, headers=headers).status_code == 422  # rejected again, no duplicate
    body, headers = signed(standard_event("A-11"))
    fixed = client.http.post(URL, body=body, headers=headers)
    assert fixed.status_code == 202, fixed.body
    assert queued_messages(seeded, aws) == [{"order_key": key("A-11"), "kind": "paid"}]


def test_a_forged_signature_is_401_with_a_reason_and_nothing_queued(client: Any, seeded: Any, aws: Any) -> None:
    body, headers = signed(standard_event("A-3"), secret="whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB")
    r = client.http.post(URL, body=body, headers=headers)
    assert r.status_code == 401
    assert r.json_body == {"error": "invalid_signature", "reason": "bad_signature"}
    assert queued_messages(seeded, aws) == []


def test_a_stale_timestamp_is_401(client: Any) -> None:
    import time

    body, headers = signed(standard_event("A-4"), ts=int(time.time()) - 3600)
    r = client.http.post(URL, body=body, headers=headers)
    assert r.status_code == 401
    assert r.json_body["reason"] == "stale_timestamp"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"webhook-id": "x", "webhook-timestamp": "abc", "webhook-signature": "v1,xx"},
        {"webhook-id": "x", "webhook-timestamp": "1", "webhook-signature": "v1,%%%not-base64"},
        {"webhook-id": "x", "webhook-timestamp": "99999999999999999999", "webhook-signature": "garbage"},
    ],
)
def test_a_malformed_or_missing_header_is_a_clean_401(client: Any, headers: dict[str, str]) -> None:
    r = client.http.post(URL, body=b"{}", headers={"content-type": "application/json", **headers})
    assert r.status_code == 401
    assert r.json_body["error"] == "invalid_signature"


def test_unknown_store_and_unknown_platform_are_404(client: Any) -> None:
    body, headers = signed(standard_event())
    assert client.http.post("/webhooks/standard/no-such-store", body=body, headers=headers).status_code == 404
    r = client.http.post("/webhooks/paypal/demo-shanghai", body=body, headers=headers)
    assert r.status_code == 404
    assert r.json_body["error"] == "unknown_platform"


def test_a_platform_the_store_has_not_configured_is_404(client: Any) -> None:
    body, headers = signed(standard_event())
    r = client.http.post("/webhooks/shopify/demo-shanghai", body=body, headers=headers)
    assert r.status_code == 404
    assert r.json_body["error"] == "platform_not_configured"


def test_an_invalid_order_is_422_naming_every_field_and_rule(client: Any, seeded: Any, aws: Any) -> None:
    event = standard_event("A-5", buyer={"title": "某" * 150, "tax_id": "12345", "type": "company"}, amount="10.00")
    body, headers = signed(event)
    r = client.http.post(URL, body=body, headers=headers)
    assert r.status_code == 422, r.body
    errors = r.json_body["errors"]
    assert all({"field", "code", "message", "message_en"} <= set(e) for e in errors)
    assert {e["field"] for e in errors} >= {"buyer.tax_id", "buyer.name"}, errors
    assert queued_messages(seeded, aws) == []


def test_an_oversized_body_is_413(client: Any) -> None:
    body, headers = signed(b"{" + b" " * (300 * 1024) + b"}")
    r = client.http.post(URL, body=body, headers=headers)
    assert r.status_code == 413


def test_when_sqs_is_down_the_answer_is_503_and_a_retry_is_not_a_duplicate(client: Any, seeded: Any, aws: Any) -> None:
    from chalicelib.adapters.queue import IssueQueue
    from chalicelib.domain.errors import InfrastructureUnavailable

    body, headers = signed(standard_event("A-6"))
    with mock.patch.object(IssueQueue, "send", side_effect=InfrastructureUnavailable("sqs down")):
        r = client.http.post(URL, body=body, headers=headers)
    assert r.status_code == 503
    assert r.headers.get("Retry-After") == "30"
    # the platform retries the same delivery: recorded but never queued, so it is queued now
    retry = client.http.post(URL, body=body, headers=headers)
    assert retry.status_code == 202
    assert retry.json_body["status"] == "queued"
    assert queued_messages(seeded, aws) == [{"order_key": key("A-6"), "kind": "paid"}]


def test_the_sweeper_queues_what_a_crash_left_recorded(client: Any, seeded: Any, aws: Any) -> None:
    """The API died between recording the order and handing it to SQS: the scheduled sweeper (invoked
    as the real handler, once the outbox's grace period has passed) sends it, once."""
    import time

    import app as app_module
    from chalicelib.adapters.ledger import Ledger

    body, headers = signed(standard_event("A-7"))
    with mock.patch("chalicelib.adapters.queue.IssueQueue.send", side_effect=RuntimeError("crash before send")):
        r = client.http.post(URL, body=body, headers=headers)
    assert r.status_code == 500
    ledger = app_module._ingest().ledger
    assert ledger.get_order(key("A-7")).status == "received"
    tick = {
        "version": "0",
        "id": "e-1",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-12-01T00:00:00Z",
        "region": "cn-north-1",
        "resources": ["arn:aws:events:cn-north-1:123456789012:rule/sweeper"],
        "detail": {},
    }
    assert app_module.sweeper(tick, None) == {"requeued": 0}  # within the grace period: left alone
    with mock.patch.object(time, "time", return_value=time.time() + 121):
        assert app_module.sweeper(tick, None) == {"requeued": 1}
        assert app_module.sweeper(tick, None) == {"requeued": 0}  # postponed: not sent twice
    assert queued_messages(seeded, aws) == [{"order_key": key("A-7"), "kind": "paid"}]
    assert isinstance(ledger, Ledger)


def test_when_dynamodb_is_unreachable_the_answer_is_503(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.adapters import aws as aws_clients

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    aws_clients.set_session(None)
    import app as app_module

    app_module._ingest.cache_clear()
    body, headers = signed(standard_event("A-8"))
    r = client.http.post(URL, body=body, headers=headers)
    assert r.status_code == 503


def test_a_request_logs_with_its_own_keys_never_the_previous_requests(
    client: Any, seeded: Any, aws: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The order key of one request (its correlation id) must not label the next request's lines: keys
    are this request's only (a warm container serves many requests; ``chalice local``, on threads)."""
    import app as app_module

    body, headers = signed(standard_event("LOG-1"))
    assert client.http.post(URL, body=body, headers=headers).status_code == 202
    caplog.clear()
    forged = {**headers, "webhook-signature": "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}
    assert client.http.post("/webhooks/standard/demo-hangzhou", body=body, headers=forged).status_code == 401
    formatter = app_module.logger.registered_formatter  # the JSON a log line carries, keys included
    lines = [json.loads(formatter.format(r)) for r in caplog.records if r.getMessage() == "signature rejected"]
    assert lines, caplog.records
    assert all(line.get("store_id") == "demo-hangzhou" for line in lines), lines
    assert not any("correlation_id" in line for line in lines), lines
