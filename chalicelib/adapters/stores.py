"""The store registry in DynamoDB: one item per store, the pydantic model as a JSON document.

The item keeps ``store_id``, ``name`` and ``merchant`` as top-level attributes (for the console and
headquarters' listing) and the full model in ``doc``, so no field is lost to DynamoDB's type mapping
(Decimals, nested maps). Reads are cached briefly per Lambda container: a webhook burst for one store
costs one read.
"""

from __future__ import annotations

import json
import time
from typing import Any

from chalicelib.adapters import aws
from chalicelib.domain.errors import UnknownStore
from chalicelib.domain.models import Store

CACHE_SECONDS = 30.0


class StoreRegistry:
    def __init__(self, table_name: str, *, clock: Any = time.monotonic) -> None:
        self.table_name = table_name
        self._clock = clock
        self._cache: dict[str, tuple[float, Store]] = {}

    def put(self, store: Store) -> None:
        item = {
            "store_id": {"S": store.store_id},
            "name": {"S": store.name},
            "doc": {"S": store.model_dump_json()},
            "updated_at": {"S": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        }
        if store.merchant:
            item["merchant"] = {"S": store.merchant}
        with aws.unavailable("store registry"):
            aws.client("dynamodb").put_item(TableName=self.table_name, Item=item)
        self._cache.pop(store.store_id, None)

    def get(self, store_id: str) -> Store:
        cached = self._cache.get(store_id)
        now = self._clock()
        if cached and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        with aws.unavailable("store registry"):
            reply = aws.client("dynamodb").get_item(
                TableName=self.table_name, Key={"store_id": {"S": store_id}}, ConsistentRead=False
            )
        item = reply.get("Item")
        if not item:
            raise UnknownStore(f"no store {store_id!r}")
        store = Store.model_validate(json.loads(item["doc"]["S"]))
        self._cache[store_id] = (now, store)
        return store

    def list(self) -> list[Store]:
        stores: list[Store] = []
        paginator = aws.client("dynamodb").get_paginator("scan")
        with aws.unavailable("store registry"):
            for page in paginator.paginate(TableName=self.table_name, ProjectionExpression="doc"):
                stores.extend(Store.model_validate(json.loads(i["doc"]["S"])) for i in page.get("Items", []))
        return sorted(stores, key=lambda s: s.store_id)
