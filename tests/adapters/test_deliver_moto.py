"""Delivery on the embedded AWS (moto server) and the tax sandbox: an order issued by the real worker,
delivered by the real deliver handler — the PDF in the locked bucket under SSE-KMS, the platform's
files fetched from the sandbox, the mail and the SMS read back through moto's own API (``dev outbox``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from chalicelib import wiring
from chalicelib.adapters.ledger import Ledger
from chalicelib.adapters.mailer import ses_region
from chalicelib.adapters.queue import IssueQueue
from chalicelib.adapters.stores import StoreRegistry
from chalicelib.domain.models import DeliveryChannel, Store
from infra.cli_dev import outbox
from tests.adapters.test_worker_sandbox import (  # the worker's fixtures and helpers, shared
    SHANGHAI,
    env,  # noqa: F401 - a fixture
    make_order,
    process,
    receive_records,
    sandbox,  # noqa: F401 - a fixture
)

EMAIL, MOBILE = "buyer.zhang@example.com", "13812345678"
ALL_CHANNELS = (DeliveryChannel.LINK, DeliveryChannel.EMAIL, DeliveryChannel.SMS)


def shop(**delivery: Any) -> Store:
    return SHANGHAI.model_copy(update={"delivery": SHANGHAI.delivery.model_copy(update=delivery)})


def issue(settings: Any, aws: Any, order_id: str, *, email: str = EMAIL, mobile: str = MOBILE) -> str:
    """An order recorded, queued and issued by the worker (which queues its delivery)."""
    order = make_order(SHANGHAI, order_id)
    order = order.model_copy(update={"buyer": order.buyer.model_copy(update={"email": email, "mobile": mobile})})
    ledger = Ledger(settings.ledger_table)
    payload = {"event": {}, "order": order.model_dump(mode="json")}
    assert (
        ledger.create_order(
            order.order_key, "demo-shanghai", kind="paid", status="received", payload=payload, outbox=True
        )
        is None
    )
    IssueQueue(settings.issue_queue_url).send(order.order_key, "paid")
    ledger.mark_queued(order.order_key)
    assert process(receive_records(aws, settings)) == []
    assert ledger.get_order(order.order_key).status.value == "issued"  # type: ignore[union-attr]
    return order.order_key


def deliver_messages(aws: Any, settings: Any) -> list[dict[str, Any]]:
    from infra.worker_runner import sqs_event

    sqs = aws.client("sqs")
    url = settings_url()
    reply = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=1)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    records: list[dict[str, Any]] = sqs_event(reply.get("Messages", []), arn, "cn-north-1")["Records"]
    return records


def settings_url() -> str:
    return wiring.deliver_queue_url()


def handle(records: list[dict[str, Any]]) -> Any:
    return wiring.deliver_batch().handle(records, lambda: 60_000)


def sent_to(moto_url: str, address: str) -> list[Any]:
    return [s for s in outbox(moto_url) if any(address in t for t in s.to)]


@pytest.fixture()
def delivering(env: Any, moto_url: str) -> Any:  # noqa: F811 - the shared fixture
    StoreRegistry(env.stores_table).put(shop(channels=ALL_CHANNELS, sms_sender_id="JINGAN"))
    wiring.reset()
    return env


def test_an_issued_order_is_stored_mailed_and_texted_once(delivering: Any, aws: Any, moto_url: str, stack: Any) -> None:
    key = issue(delivering, aws, "DLV-1")
    [message] = deliver_messages(aws, delivering)  # the worker queued exactly one delivery
    assert json.loads(message["body"]) == {"order_key": key, "reason": "issued"}
    result = handle([message])
    assert result.failed == [] and result.outcomes[message["messageId"]].status == "delivered"

    view = Ledger(delivering.ledger_table).delivery_view(key)
    assert view is not None
    record, history = view
    number = record.text("invoice_number")
    pdf_key = record.text("pdf_key")
    assert pdf_key is not None and pdf_key.startswith("demo-shanghai/20") and pdf_key.endswith(f"/{number}.pdf")
    s3 = aws.client("s3")
    head = s3.head_object(Bucket=delivering.invoice_bucket, Key=pdf_key)
    assert head["ServerSideEncryption"] == "aws:kms" and stack.env["DATA_KEY_ID"] in head["SSEKMSKeyId"]
    body = s3.get_object(Bucket=delivering.invoice_bucket, Key=pdf_key)["Body"].read()
    assert body.startswith(b"%PDF") and record.text("pdf_sha256") == hashlib.sha256(body).hexdigest()
    # the sandbox's own files: its PDF and XML stored beside ours; its OFD placeholder is no ZIP
    platform = s3.get_object(Bucket=delivering.invoice_bucket, Key=record.text("platform_pdf_key"))["Body"].read()
    assert platform.startswith(b"%PDF") and record.text("platform_pdf_sha256") == hashlib.sha256(platform).hexdigest()
    assert record.text("xml_key") and record.text("ofd_error") == "file_content"

    [mail] = sent_to(moto_url, EMAIL)
    assert mail.sender == SHANGHAI.delivery.email_from and number in mail.subject
    assert mail.attachments == [(f"{number}.pdf", len(body))]
    [link] = mail.links
    [sms] = sent_to(moto_url, "+8613812345678")
    assert sms.links == [link] and number in sms.text
    assert {(h["channel"], h["result"]) for h in history} == {("email", "sent"), ("sms", "sent")}
    assert {h["to"] for h in history} == {"bu***@example.com", "+86138****5678"}

    # the same message again (SQS delivers at least once): nothing changes
    again = handle([message])
    assert again.failed == [] and again.outcomes[message["messageId"]].records == []
    assert len(sent_to(moto_url, EMAIL)) == 1 and len(sent_to(moto_url, "+8613812345678")) == 1
    versions = s3.list_object_versions(Bucket=delivering.invoice_bucket, Prefix=pdf_key).get("Versions", [])
    assert len(versions) == 1
    assert Ledger(delivering.ledger_table).delivery_view(key) == view


def test_an_ses_failure_is_retried_and_a_bad_address_is_permanent(delivering: Any, aws: Any, moto_url: str) -> None:
    StoreRegistry(delivering.stores_table).put(shop(channels=ALL_CHANNELS, email_from="new@shop.example"))
    wiring.reset()
    key = issue(delivering, aws, "DLV-2", email="buyer.li@example.com", mobile="12345")
    [message] = deliver_messages(aws, delivering)
    first = handle([message])
    outcome = first.outcomes[message["messageId"]]
    assert first.failed == [message["messageId"]] and outcome.retry_in == 30  # hidden 30 s, then back
    by_channel = {r["channel"]: r for r in outcome.records}
    assert by_channel["email"]["result"] == "failed" and "MessageRejected" in by_channel["email"]["error"]
    assert by_channel["sms"]["result"] == "permanent" and by_channel["sms"]["error"] == "invalid_phone"

    aws.client("ses", region_name=ses_region()).verify_email_identity(EmailAddress="new@shop.example")  # the fix
    second = wiring.deliver().deliver(key, attempt=2)
    assert second.status == "delivered" and [r["channel"] for r in second.records] == ["email"]
    [mail] = sent_to(moto_url, "buyer.li@example.com")
    assert mail.sender == "new@shop.example"
    history = Ledger(delivering.ledger_table).delivery_view(key)[1]  # type: ignore[index]
    assert [(h["channel"], h["result"]) for h in history] == [
        ("email", "failed"),
        ("sms", "permanent"),
        ("email", "sent"),
    ]


def test_resend_and_the_outbox_from_the_command_line(delivering: Any, aws: Any, moto_url: str) -> None:
    from typer.testing import CliRunner

    from infra.cli_app import application

    key = issue(delivering, aws, "DLV-3")
    handle(deliver_messages(aws, delivering))
    cli = CliRunner()
    resent = cli.invoke(application(), ["invoices", "resend", key, "--email", "finance@buyer.example"])
    assert resent.exit_code == 0, resent.output
    assert "fi***@buyer.example" in resent.output and "sent" in resent.output
    assert "finance@buyer.example" not in resent.output  # masked
    [mail] = sent_to(moto_url, "finance@buyer.example")
    [first] = sent_to(moto_url, EMAIL)[-1:]
    assert mail.links and mail.links != first.links  # a fresh link
    listed = cli.invoke(application(), ["dev", "outbox", "--to", "finance@buyer.example", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.output)[0]["links"] == mail.links
    records = cli.invoke(application(), ["invoices", "deliveries", key])
    assert records.exit_code == 0 and "resend" in records.output
    refused = cli.invoke(application(), ["invoices", "resend", key, "--sms", "123"])
    assert refused.exit_code == 2 and "invalid_phone" in refused.output
