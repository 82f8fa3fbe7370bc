"""The finance reports' reads: a store's month of ledger records, the archive's transitions and manifests.

Ledger: the ``by_store`` index (``store_id``, ``created_at``), queried one UTC day at a time
(``begins_with(created_at, day)``) on a small thread pool, each day paginated to its end — a month is
~38 independent queries instead of one long chain of pages, so a month of 150,000 records is read
in parallel. Only order records (``sk = order``) are kept; no scan, no filter on the table.

Archive (``ARCHIVE_BUCKET``): the ``transitions`` objects of each UTC day of the month
(``chalicelib/audit/keys.py``) and the day's manifest, if any. An archive that is not configured or
not reachable gives no history (None), and the report says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

from chalicelib.adapters import aws
from chalicelib.adapters.archive import S3Archive
from chalicelib.adapters.ledger_items import record_of
from chalicelib.adapters.order_reads import BATCH
from chalicelib.audit import records as audit_records
from chalicelib.audit.keys import day_prefix, manifest_key, manifest_prefix
from chalicelib.reports.month import Month
from chalicelib.services.ports import OrderRecord

#: Days queried at once.
READ_CONCURRENCY = 8


class MonthReader:
    """:class:`chalicelib.reports.ports.MonthRecords` on the ledger table."""

    def __init__(self, table: str, *, concurrency: int = READ_CONCURRENCY) -> None:
        self.table = table
        self.concurrency = concurrency

    def _day(self, store_id: str, day: date) -> list[OrderRecord]:
        ddb: Any = aws.client("dynamodb")
        query: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "by_store",
            "KeyConditionExpression": "store_id = :s AND begins_with(created_at, :d)",
            "ExpressionAttributeValues": {":s": {"S": store_id}, ":d": {"S": day.isoformat()}},
        }
        found: list[OrderRecord] = []
        with aws.unavailable("ledger"):
            while True:
                reply = ddb.query(**query)
                found.extend(record_of(i) for i in reply.get("Items", []) if i.get("sk", {}).get("S") == "order")
                if "LastEvaluatedKey" not in reply:
                    return found
                query["ExclusiveStartKey"] = reply["LastEvaluatedKey"]

    def month(self, store_id: str, month: Month) -> Iterator[OrderRecord]:
        first, last = month.read_from.date(), month.end.date()
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        lo, hi = month.read_from.strftime("%Y-%m-%dT%H:%M:%S"), month.end.strftime("%Y-%m-%dT%H:%M:%S")
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            for batch in pool.map(lambda d: self._day(store_id, d), days):
                yield from (r for r in batch if lo <= r.created_at < hi)

    def get_many(self, order_keys: Sequence[str]) -> list[OrderRecord]:
        keys = list(dict.fromkeys(order_keys))
        ddb: Any = aws.client("dynamodb")
        found: list[OrderRecord] = []
        for start in range(0, len(keys), BATCH):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [{"pk": {"S": f"order#{k}"}, "sk": {"S": "order"}} for k in keys[start : start + BATCH]]
                }
            }
            with aws.unavailable("ledger"):
                while request:
                    reply = ddb.batch_get_item(RequestItems=request)
                    found.extend(record_of(i) for i in reply.get("Responses", {}).get(self.table, []))
                    request = reply.get("UnprocessedKeys") or {}
        return found


class ArchiveReader:
    """:class:`chalicelib.reports.ports.ArchiveReads` on the archive bucket (empty name: no archive)."""

    def __init__(self, bucket: str) -> None:
        self.archive = S3Archive(bucket) if bucket else None

    def transitions(self, store_id: str, month: Month) -> list[dict[str, Any]] | None:
        if self.archive is None:
            return None
        keys = [
            key
            for day in month.utc_days()
            for key, _ in self.archive.listing(day_prefix(store_id, day) + "transitions/")
        ]
        found: list[dict[str, Any]] = []
        for _, blob in self.archive.get_many(keys):
            found.extend(r for r in audit_records.decode_lines(blob) if r.get("kind") == "transition")
        return sorted(found, key=lambda r: (str(r.get("time", "")), str(r.get("order_key", ""))))

    def manifests(self, store_id: str, month: Month) -> Mapping[str, dict[str, Any] | None]:
        days = month.utc_days()
        if self.archive is None:
            return {d.isoformat(): None for d in days}
        months = sorted({f"{manifest_prefix(store_id)}{d:%Y/%m}/" for d in days})
        present = {key for prefix in months for key, _ in self.archive.listing(prefix)}
        wanted = [manifest_key(store_id, d) for d in days if manifest_key(store_id, d) in present]
        bodies = {key: json.loads(blob) for key, blob in self.archive.get_many(wanted)}
        return {d.isoformat(): bodies.get(manifest_key(store_id, d)) for d in days}
