"""The ledger's item format in DynamoDB: keys, the packed payload, an item as an :class:`OrderRecord`,
the attributes a record holds (the table layout is described in ``chalicelib/adapters/ledger.py``)."""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from chalicelib.domain.order_keys import event_order_key, parse_order_key, store_of
from chalicelib.domain.order_state import OrderEvent, parse_status, target
from chalicelib.services.archive import TransitionRecorder
from chalicelib.services.ports import Fields, OrderRecord

DUE = "due"
#: Attributes kept as numbers; every other worker attribute is text.
NUMBERS = frozenset({"lease_until", "claims", "sends", "retries", "checks", "revision"})
#: Attributes that are the record itself, not the worker's fields.
BASE = frozenset({"pk", "sk", "order_key", "store_id", "status", "kind", "payload", "violations", "due", "created_at"})


def iso(epoch: float) -> str:
    """UTC time as stored in ``created_at`` / ``updated_at`` / ``due_at`` (sortable text)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def pack(payload: dict[str, Any]) -> bytes:
    return zlib.compress(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode(), 6)


def unpack(blob: Any) -> dict[str, Any]:
    raw = blob.value if hasattr(blob, "value") else blob
    if isinstance(raw, str):
        raw = base64.b64decode(raw)
    result: dict[str, Any] = json.loads(zlib.decompress(raw))
    return result


def key(order_key: str) -> dict[str, Any]:
    return {"pk": {"S": f"order#{order_key}"}, "sk": {"S": "order"}}


def record_of(item: Mapping[str, Any]) -> OrderRecord:
    """An item (DynamoDB JSON) as an :class:`OrderRecord`."""
    fields: dict[str, str | int] = {}
    for name, value in item.items():
        if name in BASE:
            continue
        if "N" in value:
            fields[name] = int(value["N"])
        elif "S" in value:
            fields[name] = value["S"]
    return OrderRecord(
        order_key=item["order_key"]["S"],
        store_id=item["store_id"]["S"],
        status=parse_status(item["status"]["S"]),
        kind=item.get("kind", {}).get("S", "paid"),
        payload=unpack(item["payload"]["B"]) if "payload" in item else {},
        created_at=item.get("created_at", {}).get("S", ""),
        violations=json.loads(item["violations"]["S"]) if "violations" in item else None,
        fields=fields,
    )


def event_pk(order_key: str, event_id: str) -> str:
    """The key of the item recording that ``event_id`` (an event of the order's store and platform)
    came with ``order_key``: ``event#<store>:<platform>:event%3A<event id>``, sk ``event``."""
    parts = parse_order_key(order_key)
    return f"event#{event_order_key(parts.store_id, parts.platform, event_id)}"


def record_transition(
    recorder: TransitionRecorder,
    order_key: str,
    event: OrderEvent,
    before: OrderRecord | None,
    *,
    now: float,
    fields: Fields | None,
) -> None:
    """Tell ``recorder`` of a transition made (shared with the in-memory ledger): the cause is the
    record's ``last_error`` when the write sets one, else the event."""
    cause = (fields or {}).get("last_error")
    recorder.transition(
        at=datetime.fromtimestamp(now, UTC),
        store=before.store_id if before is not None else store_of(order_key),
        order_key=order_key,
        event=event.value,
        before=before.status.value if before is not None else None,
        after=target(event).value,
        cause=str(cause) if cause is not None else event.value,
    )


def check_annotation(fields: Fields) -> None:
    """``annotate`` writes delivery facts only, never the record's own attributes or the worker's claim."""
    refused = sorted(set(fields) & (BASE | {"updated_at", "claim_id", "lease_until", "deliveries"}))
    if refused:
        raise ValueError(f"annotate cannot write {refused}")


def deliveries_of(item: Mapping[str, Any]) -> list[dict[str, str]]:
    """The delivery records of an item (DynamoDB JSON), oldest first."""
    return [
        {k: str(v.get("S", "")) for k, v in entry.get("M", {}).items()}
        for entry in item.get("deliveries", {}).get("L", [])
    ]


def due_epoch(record: OrderRecord) -> float | None:
    """A record's ``due_at`` as epoch seconds (None when it is not due for anything)."""
    text = record.text("due_at")
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
