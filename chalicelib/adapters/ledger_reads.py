"""The ledger's reads beyond one record: a store's records by the ``by_store`` index (newest first for
the CLI, a key range for batch reversal, void and sync), the rejection-burst counter, a record with its
delivery records. :class:`chalicelib.adapters.ledger.Ledger` inherits them."""

from __future__ import annotations

from typing import Any

from chalicelib.adapters import aws
from chalicelib.adapters.ledger_items import deliveries_of, key, record_of
from chalicelib.domain.order_state import OrderStatus
from chalicelib.services.ports import OrderRecord


class LedgerReads:
    table: str

    @property
    def _ddb(self) -> Any:
        return aws.client("dynamodb")

    def orders_of_store(self, store_id: str, *, limit: int = 50, status: str | None = None) -> list[OrderRecord]:
        """The store's most recent order records, newest first (index ``by_store``); with ``status``,
        the most recent ``limit`` in that status (filtered by DynamoDB, page after page)."""
        query: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "by_store",
            "KeyConditionExpression": "store_id = :s",
            "ExpressionAttributeValues": {":s": {"S": store_id}},
            "ScanIndexForward": False,
        }
        if status is not None:
            query["FilterExpression"] = "#st = :st"
            query["ExpressionAttributeNames"] = {"#st": "status"}
            query["ExpressionAttributeValues"][":st"] = {"S": OrderStatus(status).value}
        found: list[OrderRecord] = []
        with aws.unavailable("ledger"):
            while len(found) < limit:
                reply = self._ddb.query(**query, Limit=limit if status is None else max(limit, 100))
                found.extend(record_of(i) for i in reply.get("Items", []) if i.get("sk", {}).get("S") == "order")
                if status is None or "LastEvaluatedKey" not in reply:
                    break
                query["ExclusiveStartKey"] = reply["LastEvaluatedKey"]
        return found[:limit]

    def store_records(
        self, store_id: str, *, since: str, statuses: frozenset[OrderStatus] | None = None, limit: int = 1000
    ) -> list[OrderRecord]:
        """The store's records created at or after ``since`` (ISO text), oldest first, up to ``limit``
        (index ``by_store``: a key-range query, never a scan; ``statuses`` filtered by DynamoDB — the
        filtered-out items are read, so keep ``since`` recent). Used by batch reversal, void and sync."""
        query: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "by_store",
            "KeyConditionExpression": "store_id = :s AND created_at >= :since",
            "ExpressionAttributeValues": {":s": {"S": store_id}, ":since": {"S": since}},
            "ScanIndexForward": True,
        }
        if statuses:
            names = [f":st{i}" for i in range(len(statuses))]
            query["FilterExpression"] = f"#st IN ({', '.join(names)})"
            query["ExpressionAttributeNames"] = {"#st": "status"}
            for name, status in zip(names, sorted(statuses, key=lambda x: x.value), strict=True):
                query["ExpressionAttributeValues"][name] = {"S": status.value}
        found: list[OrderRecord] = []
        with aws.unavailable("ledger"):
            while len(found) < limit:
                reply = self._ddb.query(**query)
                found.extend(record_of(i) for i in reply.get("Items", []) if i.get("sk", {}).get("S") == "order")
                if "LastEvaluatedKey" not in reply:
                    break
                query["ExclusiveStartKey"] = reply["LastEvaluatedKey"]
        return found[:limit]

    def count_rejection(self, store_id: str, *, window: int, expires_at: float) -> int:
        """Count one rejection of ``store_id`` in burst window ``window`` (one atomic ADD, made on the
        rejection path only): the window's count, this rejection included. The item expires with
        the window (TTL ``expires_at``)."""
        with aws.unavailable("ledger"):
            reply = self._ddb.update_item(
                TableName=self.table,
                Key={"pk": {"S": f"rejections#{store_id}"}, "sk": {"S": f"window#{window}"}},
                UpdateExpression="SET expires_at = if_not_exists(expires_at, :exp) ADD #n :one",
                ExpressionAttributeNames={"#n": "n"},
                ExpressionAttributeValues={":one": {"N": "1"}, ":exp": {"N": str(int(expires_at))}},
                ReturnValues="UPDATED_NEW",
            )
        return int(reply["Attributes"]["n"]["N"])

    def delivery_view(self, order_key: str) -> tuple[OrderRecord, list[dict[str, str]]] | None:
        """The record and its delivery records (list attribute ``deliveries``), one consistent read."""
        with aws.unavailable("ledger"):
            item = self._ddb.get_item(TableName=self.table, Key=key(order_key), ConsistentRead=True).get("Item")
        if not item:
            return None
        return record_of(item), deliveries_of(item)
