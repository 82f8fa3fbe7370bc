"""Reads of order records by key for the invoice API and the dashboard: BatchGetItem, never a scan."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chalicelib.adapters import aws
from chalicelib.adapters.ledger import Ledger
from chalicelib.adapters.ledger_items import record_of
from chalicelib.services.ports import OrderRecord

BATCH = 100  # BatchGetItem's limit


class OrderReads:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def get_many(self, order_keys: Sequence[str]) -> list[OrderRecord]:
        keys = list(dict.fromkeys(order_keys))
        found: list[OrderRecord] = []
        ddb: Any = aws.client("dynamodb")
        for start in range(0, len(keys), BATCH):
            request: dict[str, Any] = {
                self.ledger.table: {
                    "Keys": [{"pk": {"S": f"order#{k}"}, "sk": {"S": "order"}} for k in keys[start : start + BATCH]],
                    "ConsistentRead": True,
                }
            }
            with aws.unavailable("ledger"):
                while request:
                    reply = ddb.batch_get_item(RequestItems=request)
                    found.extend(record_of(i) for i in reply.get("Responses", {}).get(self.ledger.table, []))
                    request = reply.get("UnprocessedKeys") or {}
        order = {k: i for i, k in enumerate(keys)}
        return sorted(found, key=lambda r: order.get(r.order_key, 0))

    def overdue(self, now: float, *, limit: int) -> list[OrderRecord]:
        return self.ledger.due(now, limit=limit)
