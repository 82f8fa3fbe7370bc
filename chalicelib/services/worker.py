"""The SQS worker's record handler: parse one message, run the issuing use case for its order.

``app.worker`` hands every record of a batch to :func:`handle_record` through Powertools'
``BatchProcessor``: raising reports the record as failed (SQS redelivers it after the visibility
timeout and moves it to the DLQ after ``maxReceiveCount`` receives); returning deletes it.

The message body is ``{"order_key": ..., "kind": "paid" | "refunded"}`` (``IssueQueue.send``), plus
``"poll": n`` on the messages this worker re-enqueues while the platform is still issuing. A body that
is not that shape raises (it lands in the DLQ for a human: it can never succeed, and deleting it
silently would hide a bug upstream).

The adapters (ledger, store registry, secrets, HTTP transport, SNS alerts, SQS re-queue) are built on
first use and kept for the container's lifetime (:func:`use_case`); :func:`reset` forgets them (tests).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics

from chalicelib.adapters import aws
from chalicelib.config import settings
from chalicelib.domain.errors import ConfigurationError, MalformedPayload
from chalicelib.domain.models import Store
from chalicelib.services.issue import IssueInvoice, IssueOutcome
from chalicelib.taxapi.base import Credentials

logger = Logger(child=True)

KINDS = ("paid", "refunded")


# --- adapters the use case needs beyond chalicelib.adapters -----------------------------------------
class SecretCredentials:
    """Provider credentials from the store's secret (a JSON object of strings), via the SecretStore."""

    def __init__(self, secrets: Any) -> None:
        self._secrets = secrets

    def load(self, store: Store) -> Credentials:
        raw = self._secrets.get_json(store.provider.credentials_secret)
        values = {str(k): str(v) for k, v in raw.items() if isinstance(v, str | int) and not isinstance(v, bool)}
        if not values:
            raise ConfigurationError(
                f"store {store.store_id}: provider credentials secret holds no values", code="missing_credential"
            )
        return Credentials(values)


class SnsAlerts:
    """Alerts to the alarm topic (ALARM_TOPIC_ARN). Messages name stores and orders, never secrets."""

    def __init__(self, topic_arn: str) -> None:
        self.topic_arn = topic_arn

    def publish(self, subject: str, message: str) -> None:
        if not self.topic_arn:
            logger.warning("no alarm topic configured; alert not sent", extra={"subject": subject})
            return
        with aws.unavailable("alarm topic"):
            aws.client("sns").publish(TopicArn=self.topic_arn, Subject=subject[:100], Message=message)


class SqsRequeue:
    """Put an order back on the issue queue with a delay (while the platform is still issuing)."""

    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def requeue(self, order_key: str, kind: str, *, delay_seconds: int, poll: int) -> None:
        body = json.dumps({"order_key": order_key, "kind": kind, "poll": poll}, ensure_ascii=False)
        with aws.unavailable("issue queue"):
            aws.client("sqs").send_message(
                QueueUrl=self.queue_url,
                MessageBody=body,
                DelaySeconds=max(0, min(900, delay_seconds)),
                MessageAttributes={"kind": {"DataType": "String", "StringValue": kind}},
            )


class _Transport:
    """The HTTP transport, built on first send (so a worker that only skips never builds it)."""

    def __init__(self) -> None:
        self._transport: Any = None

    def send(self, request: Any) -> Any:
        if self._transport is None:
            from chalicelib.adapters.http import HttpTransport

            self._transport = HttpTransport(connect_timeout=3.0, read_timeout=15.0)
        return self._transport.send(request)


@cache
def use_case() -> IssueInvoice:
    """The use case with this container's adapters (built once, on first use)."""
    from chalicelib.adapters.ledger import Ledger
    from chalicelib.adapters.secrets import SecretStore
    from chalicelib.adapters.stores import StoreRegistry
    from chalicelib.taxapi.registry import Providers

    s = settings()
    transport = _Transport()
    return IssueInvoice(
        ledger=Ledger(s.ledger_table),
        stores=StoreRegistry(s.stores_table),
        credentials=SecretCredentials(SecretStore()),
        providers=Providers(s, send=transport.send),
        transport=transport,
        alerts=SnsAlerts(s.alarm_topic_arn),
        requeue=SqsRequeue(s.issue_queue_url),
        metrics=Metrics(namespace="EInvoice", service="einvoice"),
        logger=logger,
    )


def reset() -> None:
    """Forget the container's adapters and cached tokens (tests switch stacks between cases)."""
    from chalicelib.taxapi.registry import clear_token_caches

    use_case.cache_clear()
    clear_token_caches()


def parse_body(body: str) -> tuple[str, str, int]:
    """``(order_key, kind, poll)`` from a message body; MalformedPayload when it is not that shape."""
    try:
        data = json.loads(body)
    except ValueError:
        raise MalformedPayload("issue message is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedPayload("issue message is not a JSON object")
    order_key, kind, poll = data.get("order_key"), data.get("kind", "paid"), data.get("poll", 0)
    if not isinstance(order_key, str) or not order_key:
        raise MalformedPayload("issue message lacks order_key")
    if kind not in KINDS:
        raise MalformedPayload(f"issue message has an unknown kind {kind!r}")
    if not isinstance(poll, int) or isinstance(poll, bool) or poll < 0:
        raise MalformedPayload("issue message has a bad poll count")
    return order_key, str(kind), poll


def handle_record(record: Any) -> IssueOutcome:
    """One SQS record (Powertools ``SQSRecord`` or the raw dict): raise to retry, return to delete."""
    body = record.body if hasattr(record, "body") else record["body"]
    message_id = record.message_id if hasattr(record, "message_id") else record.get("messageId")
    order_key, kind, poll = parse_body(body)
    # order_key rides in ``extra`` (not append_keys): keys appended to a child logger would outlive
    # the record in a batch, and a child logger has no keys of its own before app.py's parent exists.
    try:
        outcome = use_case().issue(order_key, kind, poll=poll)
    except Exception as exc:
        logger.warning(
            "order attempt failed; the message will be retried",
            extra={"order_key": order_key, "message_id": message_id, "error": getattr(exc, "code", type(exc).__name__)},
        )
        raise
    logger.info(
        "order attempt done",
        extra={
            "order_key": order_key,
            "message_id": message_id,
            "status": outcome.status,
            "invoice_number": outcome.invoice_number,
        },
    )
    return outcome
