"""Orders taken through the real ledger and the real settler into issued / failed (for the invoice API
and the dashboard tests): record → queued → claimed → the settler's own outcome write and counter."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib.domain.order_keys import order_key
from chalicelib.domain.order_state import OrderEvent
from chalicelib.domain.retry import DEFAULT_SCHEDULE
from chalicelib.services.dashboard import InvoiceCounterPort
from chalicelib.services.ports import OrderLedger
from chalicelib.services.settle import Settler
from chalicelib.taxapi.base import InvoiceResult, InvoiceStatus


class _Quiet:
    def publish(self, subject: str, message: str) -> None:
        pass

    def add_metric(self, name: str, unit: str, value: float) -> object:
        return None


def settler(ledger: OrderLedger, counters: InvoiceCounterPort | None, clock: Any = None) -> Settler:
    return Settler(
        ledger=ledger,
        alerts=_Quiet(),
        metrics=_Quiet(),
        logger=Logger(service="einvoice-test"),
        schedule=DEFAULT_SCHEDULE,
        clock=clock or (lambda: datetime.now(UTC)),
        counters=counters,
    )


def payload(order_id: str, platform: str, lines: list[tuple[str, str]], paid_at: datetime) -> dict[str, Any]:
    """A record payload: the event and a normalised order with ``lines`` = [(tax code, total)]."""
    total = sum((Decimal(t) for _, t in lines), Decimal(0))
    return {
        "event": {"platform": platform, "order_id": order_id, "amount": str(total), "occurred_at": paid_at.isoformat()},
        "order": {
            "total": str(total),
            "total_tax": str((total * Decimal("0.06") / Decimal("1.06")).quantize(Decimal("0.01"))),
            "lines": [{"tax_code": code, "total": t} for code, t in lines],
        },
    }


def claimed(
    ledger: Any, store_id: str, platform: str, lines: list[tuple[str, str]], *, order_id: str | None = None
) -> tuple[str, str, str]:
    """A recorded, queued and claimed order: (order id, order key, claim id)."""
    order_id = order_id or f"O-{uuid.uuid4().hex[:8]}"
    key = order_key(store_id, platform, order_id)
    paid = datetime.now(UTC) - timedelta(seconds=20)
    ledger.create_order(
        key, store_id, kind="paid", status="received", payload=payload(order_id, platform, lines, paid), outbox=True
    )
    now = datetime.now(UTC).timestamp()
    ledger.transition(key, OrderEvent.ENQUEUED, now=now)
    claim = uuid.uuid4().hex
    assert ledger.transition(key, OrderEvent.CLAIM, now=now, claim_id=claim, lease_until=now + 60).ok
    return order_id, key, claim


def issue(
    ledger: Any,
    counters: InvoiceCounterPort | None,
    store_id: str,
    lines: list[tuple[str, str]],
    *,
    platform: str = "standard",
    order_id: str | None = None,
    fields: dict[str, str] | None = None,
) -> tuple[str, str]:
    """Issue an order through the settler (counted); extra ``fields`` (pdf_key …) written after. (id, key)"""
    order_id, key, claim = claimed(ledger, store_id, platform, lines, order_id=order_id)
    total = sum((Decimal(t) for _, t in lines), Decimal(0))
    number = "2531" + str(uuid.uuid4().int)[:16]
    result = InvoiceResult(
        serial="S",
        order_no=order_id,
        status=InvoiceStatus.ISSUED,
        invoice_number=number,
        issued_at=datetime.now(UTC),
        total_amount=total,
        total_tax=Decimal(0),
    )
    outcome = settler(ledger, counters).result(key, claim, result, sent=1, keys={})
    assert outcome.status is not None and outcome.status.value == "issued"
    if fields:
        from chalicelib.adapters import aws

        aws.client("dynamodb").update_item(
            TableName=ledger.table,
            Key={"pk": {"S": f"order#{key}"}, "sk": {"S": "order"}},
            UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields))),
            ExpressionAttributeNames={f"#f{i}": k for i, k in enumerate(fields)},
            ExpressionAttributeValues={f":v{i}": {"S": v} for i, v in enumerate(fields.values())},
        )
    return order_id, key


def fail(ledger: Any, counters: InvoiceCounterPort | None, store_id: str, lines: list[tuple[str, str]]) -> str:
    """An order the platform refused (failed, counted): its key."""
    order_id, key, claim = claimed(ledger, store_id, "standard", lines)
    result = InvoiceResult(serial="S", order_no=order_id, status=InvoiceStatus.FAILED, failure_reason="seller blocked")
    outcome = settler(ledger, counters).result(key, claim, result, sent=1, keys={})
    assert outcome.status is not None and outcome.status.value == "failed"
    return key
