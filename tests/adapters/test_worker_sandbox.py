"""The worker end to end on the embedded AWS (moto, ``stack``) and the local tax sandbox (real HTTP):
stores and secrets seeded from ``examples/``, an order record written with the ledger, a real SQS
message received from the issue queue, and the batch handled as ``app.worker`` does (Powertools'
``BatchProcessor`` around :func:`chalicelib.services.worker.handle_record`).

The assertion that matters is on the sandbox's side: exactly one invoice for the order, however often
the message is processed and whatever the network did to the first reply.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chalicelib import config
from chalicelib.adapters.ledger import Ledger
from chalicelib.adapters.queue import IssueQueue
from chalicelib.adapters.secrets import SecretStore
from chalicelib.adapters.stores import StoreRegistry
from chalicelib.domain.models import BuyerType, InvoiceBuyer, InvoiceLine, InvoiceOrder, Party, Store
from chalicelib.services import worker
from chalicelib.services.issue import serial_for

sandbox_server = pytest.importorskip("chalicelib.sandbox.server")

ROOT = Path(__file__).resolve().parents[2]
SECRETS = json.loads((ROOT / "examples/secrets.local.json").read_text())


def load_store(name: str) -> Store:
    return Store.model_validate(json.loads((ROOT / f"examples/stores/{name}.json").read_text()))


SHANGHAI, HANGZHOU = load_store("demo-shanghai"), load_store("demo-hangzhou")


def sandbox_config() -> dict[str, Any]:
    """The sandbox knows the example stores' fake credentials and sellers; invoices issue at once."""
    sta = SECRETS["einvoice/demo-shanghai/sta"]
    nuonuo = SECRETS["einvoice/demo-hangzhou/nuonuo"]
    return {
        "sta": {
            "apps": {
                sta["app_id"]: {
                    "sm4_key": sta["sm4_key"],
                    "sign_key": sta["sign_key"],
                    "sellers": [SHANGHAI.seller.tax_id],
                }
            }
        },
        "nuonuo": {
            "apps": {nuonuo["app_key"]: {"app_secret": nuonuo["app_secret"], "user_tax": HANGZHOU.seller.tax_id}}
        },
        "sellers": {
            s.seller.tax_id: {"name": s.seller.name, "province": "31", "credit_line": "1000000.00"}
            for s in (SHANGHAI, HANGZHOU)
        },
        "issue_delay_seconds": 0,
    }


@pytest.fixture()
def sandbox() -> Iterator[Any]:
    with sandbox_server.start_sandbox(sandbox_config()) as handle:
        yield handle


@pytest.fixture()
def env(stack: Any, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Stores, secrets and the stage endpoints pointing at the sandbox; fresh worker adapters."""
    monkeypatch.setenv("STA_ENDPOINT", sandbox.url)
    monkeypatch.setenv("NUONUO_ENDPOINT", f"{sandbox.url}/open/v1/services")
    monkeypatch.setenv("NUONUO_TOKEN_URL", f"{sandbox.url}/accessToken")
    config.settings.cache_clear()
    s = config.settings()
    registry = StoreRegistry(s.stores_table)
    for store in (SHANGHAI, HANGZHOU):
        registry.put(store)
    secrets = SecretStore()
    for name, value in SECRETS.items():
        if name.startswith("einvoice/"):
            secrets.put(name, json.dumps(value))
    worker.reset()
    worker.use_case().sleep = lambda _seconds: None  # the sandbox issues at once: no need to wait
    yield s
    worker.reset()
    config.settings.cache_clear()


def make_order(store: Store, order_id: str) -> InvoiceOrder:
    item = store.default_item
    return InvoiceOrder(
        order_key=f"{store.store_id}:{order_id}",
        store_id=store.store_id,
        order_id=order_id,
        seller=Party(
            name=store.seller.name,
            tax_id=store.seller.tax_id,
            address=store.seller.address,
            phone=store.seller.phone,
            bank=store.seller.bank,
            account=store.seller.account,
        ),
        buyer=InvoiceBuyer(name="个人", type=BuyerType.INDIVIDUAL),
        lines=(
            InvoiceLine(
                name=item.name or item.short_name,
                short_name=item.short_name,
                tax_code=item.tax_code,
                tax_rate=item.tax_rate,
                quantity=Decimal(2),
                unit=item.unit,
                unit_price=Decimal("50.00"),
                amount=Decimal("100.00"),
                tax=Decimal("6.00"),
                total=Decimal("106.00"),
            ),
        ),
        total_amount=Decimal("100.00"),
        total_tax=Decimal("6.00"),
        total=Decimal("106.00"),
        issuer=store.invoice_defaults.issuer,
    )


def enqueue_order(settings: Any, store: Store, order_id: str) -> str:
    order = make_order(store, order_id)
    ledger = Ledger(settings.ledger_table)
    assert (
        ledger.create_order(
            order.order_key,
            store.store_id,
            kind="paid",
            status="received",
            payload={"event": {}, "order": order.model_dump(mode="json")},
            outbox=True,
        )
        is None
    )
    IssueQueue(settings.issue_queue_url).send(order.order_key, "paid")
    ledger.mark_queued(order.order_key)
    return order.order_key


def receive_event(aws: Any, settings: Any) -> dict[str, Any]:
    """One real message from the issue queue, as the Lambda SQS event source would hand it over."""
    from infra.worker_runner import sqs_event

    sqs = aws.client("sqs")
    reply = sqs.receive_message(
        QueueUrl=settings.issue_queue_url,
        MaxNumberOfMessages=1,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
        WaitTimeSeconds=1,
    )
    messages = reply.get("Messages", [])
    assert len(messages) == 1
    arn = sqs.get_queue_attributes(QueueUrl=settings.issue_queue_url, AttributeNames=["QueueArn"])
    return sqs_event(messages, arn["Attributes"]["QueueArn"], "cn-north-1")


def process(event: dict[str, Any]) -> dict[str, Any]:
    """What ``app.worker`` does with a batch (a batch that fails entirely is reported, not raised:
    for SQS both mean every record comes back)."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    result: dict[str, Any] = process_partial_response(
        event=event, record_handler=worker.handle_record, processor=processor
    )
    return result


@pytest.mark.parametrize("store", [SHANGHAI, HANGZHOU], ids=["sta", "nuonuo"])
def test_same_message_twice_issues_exactly_one_invoice(env: Any, aws: Any, sandbox: Any, store: Store) -> None:
    order_key = enqueue_order(env, store, "SO-9001")
    event = receive_event(aws, env)

    assert process(event) == {"batchItemFailures": []}
    assert process(event) == {"batchItemFailures": []}  # a duplicate delivery

    issued = sandbox.state.snapshot(serial=serial_for(order_key))
    assert len(issued) == 1
    fields = Ledger(env.ledger_table).issue_fields(order_key)
    assert fields["status"] == "issued"
    assert issued[0]["status"] == "issued" and issued[0]["total"] == "106.00"
    assert fields["invoice_number"] == issued[0]["number"] and len(fields["invoice_number"]) == 20
    assert fields["provider_ref"] == issued[0]["provider_ref"]
    assert fields["serial"] == serial_for(order_key) and fields["sends"] == 1
    assert "claim_id" not in fields and "lease_until" not in fields


def test_lost_reply_then_redelivery_queries_first_and_never_issues_twice(env: Any, aws: Any, sandbox: Any) -> None:
    order_key = enqueue_order(env, SHANGHAI, "SO-9002")
    event = receive_event(aws, env)
    sandbox.state.faults.update({"timeout_after_commit_pct": 100, "timeout_mode": "close", "only": ["QDFPSC"]})

    result = process(event)

    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == [event["Records"][0]["messageId"]]
    assert Ledger(env.ledger_table).issue_fields(order_key)["status"] == "ambiguous"
    assert len(sandbox.state.snapshot(serial=serial_for(order_key))) == 1  # the sandbox did issue it

    sandbox.state.faults.update({"timeout_after_commit_pct": 0})
    assert process(event) == {"batchItemFailures": []}  # the redelivery

    fields = Ledger(env.ledger_table).issue_fields(order_key)
    assert fields["status"] == "issued" and fields["sends"] == 1  # found by the query: no second request
    assert len(sandbox.state.snapshot(serial=serial_for(order_key))) == 1


def test_refused_credentials_fail_the_record_and_alert(env: Any, aws: Any, sandbox: Any) -> None:
    sns, sqs = aws.client("sns"), aws.client("sqs")
    inbox = sqs.create_queue(QueueName=f"alerts-{env.ledger_table[:20]}")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=env.alarm_topic_arn, Protocol="sqs", Endpoint=inbox_arn)
    bad = dict(SECRETS["einvoice/demo-shanghai/sta"], app_id="UNKNOWN-APP")
    SecretStore().put(SHANGHAI.provider.credentials_secret, json.dumps(bad))
    worker.reset()
    worker.use_case().sleep = lambda _seconds: None
    order_key = enqueue_order(env, SHANGHAI, "SO-9003")

    result = process(receive_event(aws, env))

    assert len(result["batchItemFailures"]) == 1
    assert Ledger(env.ledger_table).issue_fields(order_key)["status"] == "failed_auth"
    alerts = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    assert len(alerts) == 1
    text = alerts[0]["Body"]
    assert "demo-shanghai" in text
    assert bad["sign_key"] not in text and bad["sm4_key"] not in text
    assert not sandbox.state.snapshot(serial=serial_for(order_key))


def test_malformed_message_is_reported_failed(env: Any) -> None:
    event = {
        "Records": [
            {
                "messageId": "m-1",
                "receiptHandle": "r",
                "body": "not json",
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:cn-north-1:123456789012:q",
                "awsRegion": "cn-north-1",
            }
        ]
    }
    assert process(event) == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
