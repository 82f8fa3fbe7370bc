"""An in-memory ledger with the DynamoDB ledger's semantics, derived from the same transition table.

It passes the same contract suite as ``chalicelib.adapters.ledger.Ledger`` (``tests/contract``), so
unit tests that use it cannot rely on anything the real ledger does not do.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chalicelib.adapters.ledger_items import NUMBERS, check_annotation, event_pk, iso, record_transition
from chalicelib.config import SWEEP_GRACE_SECONDS
from chalicelib.domain.delivery import DELIVERABLE
from chalicelib.domain.event_ids import EventIdHeld
from chalicelib.domain.order_state import (
    FENCED,
    LEASED,
    RELEASING,
    REPLACES_PAYLOAD,
    TERMINAL,
    OrderEvent,
    OrderStatus,
    sources,
    target,
)
from chalicelib.services.archive import TransitionRecorder
from chalicelib.services.ports import Fields, OrderRecord, Transition


class FakeLedger:
    def __init__(self, *, clock: Callable[[], float] = time.time, recorder: TransitionRecorder | None = None) -> None:
        self.recorder = recorder
        self.items: dict[str, dict[str, Any]] = {}
        self.clock = clock
        self.calls: list[str] = []
        self.rejection_windows: dict[tuple[str, int], int] = {}  # (store, window) → rejections
        self.events: dict[str, str] = {}  # event item key (ledger.event_pk) → the order key it came with
        self._lock = threading.Lock()

    # --- helpers ----------------------------------------------------------------------------------
    def _record(self, key: str) -> OrderRecord:
        item = self.items[key]
        fields = {
            k: v
            for k, v in item.items()
            if k not in ("store_id", "status", "kind", "payload", "created_at", "violations", "due", "deliveries")
        }
        return OrderRecord(
            order_key=key,
            store_id=item["store_id"],
            status=OrderStatus(item["status"]),
            kind=item["kind"],
            payload=copy.deepcopy(item["payload"]),
            created_at=item["created_at"],
            violations=copy.deepcopy(item.get("violations")),
            fields=dict(fields),
        )

    def put(
        self,
        order_key: str,
        *,
        store_id: str,
        status: OrderStatus,
        kind: str = "paid",
        payload: dict[str, Any],
        **fields: Any,
    ) -> None:
        """Test set-up: a record as it would be after some history."""
        now = iso(self.clock())
        self.items[order_key] = {
            "store_id": store_id,
            "status": status.value,
            "kind": kind,
            "payload": copy.deepcopy(payload),
            "created_at": now,
            "updated_at": now,
            **fields,
        }

    # --- intake -----------------------------------------------------------------------------------
    def create_order(
        self,
        order_key: str,
        store_id: str,
        *,
        kind: str,
        status: str,
        payload: dict[str, Any],
        outbox: bool,
        violations: list[dict[str, str]] | None = None,
        grace_seconds: float = SWEEP_GRACE_SECONDS,
        event_id: str | None = None,
    ) -> OrderRecord | EventIdHeld | None:
        self.calls.append("create_order")
        with self._lock:
            old = self.items.get(order_key)
            if old is not None and old["status"] != OrderStatus.REJECTED.value:
                return self._record(order_key)
            if event_id is not None:  # recorded with the order, or nothing is (one transaction)
                holder = self.events.setdefault(event_pk(order_key, event_id), order_key)
                if holder != order_key:
                    return EventIdHeld(event_id, holder)
            now = self.clock()
            item: dict[str, Any] = {
                "store_id": store_id,
                "status": OrderStatus(status).value,
                "kind": kind,
                "payload": json.loads(json.dumps(payload)),
                "created_at": iso(now),
                "updated_at": iso(now),
            }
            if outbox:
                item["due"] = "due"
                item["due_at"] = iso(now + grace_seconds)
            if violations:
                item["violations"] = copy.deepcopy(violations)
            self.items[order_key] = item
        return None

    def get_order(self, order_key: str) -> OrderRecord | None:
        self.calls.append("get_order")
        return self._record(order_key) if order_key in self.items else None

    def mark_queued(self, order_key: str) -> None:
        self.transition(order_key, OrderEvent.ENQUEUED, now=self.clock())

    def orders_of_store(self, store_id: str, *, limit: int = 50, status: str | None = None) -> list[OrderRecord]:
        keys = [
            k
            for k, v in self.items.items()
            if v["store_id"] == store_id and (status is None or v["status"] == OrderStatus(status).value)
        ]
        keys.sort(key=lambda k: self.items[k]["created_at"], reverse=True)
        return [self._record(k) for k in keys[:limit]]

    def store_records(
        self, store_id: str, *, since: str, statuses: frozenset[OrderStatus] | None = None, limit: int = 1000
    ) -> list[OrderRecord]:
        keys = [
            k
            for k, v in self.items.items()
            if v["store_id"] == store_id
            and v["created_at"] >= since
            and (not statuses or v["status"] in {s.value for s in statuses})
        ]
        keys.sort(key=lambda k: self.items[k]["created_at"])
        return [self._record(k) for k in keys[:limit]]

    def count_rejection(self, store_id: str, *, window: int, expires_at: float) -> int:
        self.calls.append("count_rejection")
        with self._lock:
            count = self.rejection_windows.get((store_id, window), 0) + 1
            self.rejection_windows[(store_id, window)] = count
            return count

    def issue_fields(self, order_key: str) -> dict[str, Any]:
        record = self.get_order(order_key)
        return {} if record is None else {"status": record.status.value, **record.fields}

    # --- transitions ------------------------------------------------------------------------------
    def transition(
        self,
        order_key: str,
        event: OrderEvent,
        *,
        now: float,
        claim_id: str | None = None,
        lease_until: float | None = None,
        due_at: float | None = None,
        fields: Fields | None = None,
        keep: Mapping[str, str] | None = None,
        add: Mapping[str, int] | None = None,
        payload: dict[str, Any] | None = None,
    ) -> Transition:
        self.calls.append(f"transition:{event.value}")
        if event in FENCED and not claim_id:
            raise ValueError(f"{event} is fenced: it needs the claim id")
        if (payload is not None) is not (event in REPLACES_PAYLOAD):
            raise ValueError(f"{event} {'needs' if event in REPLACES_PAYLOAD else 'takes no'} payload")
        if event in LEASED and (not claim_id or lease_until is None):
            raise ValueError(f"{event} needs a claim id and a lease")
        with self._lock:
            item = self.items.get(order_key)
            if item is None:
                return Transition(False, None)
            before = self._record(order_key)
            allowed = item["status"] in {s.value for s in sources(event)}
            if allowed and event in FENCED:
                allowed = item.get("claim_id") == claim_id
            if allowed and event in LEASED:
                allowed = "lease_until" not in item or item["lease_until"] < int(now)
            if not allowed:
                return Transition(False, before)
            destination = target(event)
            item["status"] = destination.value
            item["updated_at"] = iso(now)
            if event in LEASED:
                assert claim_id is not None and lease_until is not None
                item["claim_id"] = claim_id
                item["lease_until"] = int(lease_until)
            elif event in RELEASING:
                item.pop("claim_id", None)
                item.pop("lease_until", None)
            if due_at is not None and (destination not in TERMINAL or destination in DELIVERABLE):
                item["due"] = "due"
                item["due_at"] = iso(due_at)
            else:
                item.pop("due", None)
                item.pop("due_at", None)
            if payload is not None:
                item["payload"] = json.loads(json.dumps(payload))
                item.pop("violations", None)
            self._apply(item, fields or {})
            for name, value in (keep or {}).items():
                item.setdefault(name, value)
            for name, step in (add or {}).items():
                item[name] = int(item.get(name, 0)) + step
        if self.recorder is not None:
            record_transition(self.recorder, order_key, event, before, now=now, fields=fields)
        return Transition(True, before)

    def touch(self, order_key: str, claim_id: str, *, fields: Fields, lease_until: float | None = None) -> bool:
        self.calls.append("touch")
        with self._lock:
            item = self.items.get(order_key)
            if item is None or item["status"] != OrderStatus.ISSUING.value or item.get("claim_id") != claim_id:
                return False
            item["updated_at"] = iso(self.clock())
            self._apply(item, fields)
            if lease_until is not None:
                item["lease_until"] = int(lease_until)
                item["due_at"] = iso(lease_until)
            return True

    def revise(
        self,
        order_key: str,
        *,
        revision: int,
        statuses: frozenset[OrderStatus],
        now: float,
        fields: Fields,
        payload: dict[str, Any] | None = None,
    ) -> Transition:
        self.calls.append("revise")
        with self._lock:
            item = self.items.get(order_key)
            if item is None:
                return Transition(False, None)
            before = self._record(order_key)
            if item["status"] not in {s.value for s in statuses} or int(item.get("revision", 0)) != revision:
                return Transition(False, before)
            item["updated_at"] = iso(now)
            self._apply(item, fields)
            item["revision"] = revision + 1
            if payload is not None:
                item["payload"] = json.loads(json.dumps(payload))
            return Transition(True, before)

    def due(self, now: float, *, limit: int) -> list[OrderRecord]:
        self.calls.append("due")
        cutoff = iso(now)
        keys = sorted(
            (k for k, v in self.items.items() if v.get("due") == "due" and v.get("due_at", "") < cutoff),
            key=lambda k: self.items[k]["due_at"],
        )
        return [self._record(k) for k in keys[:limit]]

    def postpone(self, order_key: str, *, was: str, due_at: float) -> bool:
        self.calls.append("postpone")
        with self._lock:
            item = self.items.get(order_key)
            if item is None or item.get("due_at") != was:
                return False
            item["due_at"] = iso(due_at)
            return True

    # --- delivery -----------------------------------------------------------------------------------
    def delivery_view(self, order_key: str) -> tuple[OrderRecord, list[dict[str, str]]] | None:
        self.calls.append("delivery_view")
        if order_key not in self.items:
            return None
        return self._record(order_key), copy.deepcopy(self.items[order_key].get("deliveries", []))

    def annotate(
        self,
        order_key: str,
        *,
        fields: Fields,
        deliveries: Sequence[Mapping[str, str]] = (),
        statuses: frozenset[OrderStatus] = DELIVERABLE,
        settle_due: bool = False,
    ) -> bool:
        self.calls.append("annotate")
        check_annotation(fields)
        with self._lock:
            item = self.items.get(order_key)
            if item is None or item["status"] not in {s.value for s in statuses}:
                return False
            item["updated_at"] = iso(self.clock())
            self._apply(item, fields)
            if settle_due:
                item.pop("due", None)
                item.pop("due_at", None)
            if deliveries:
                item.setdefault("deliveries", []).extend({k: str(v) for k, v in r.items()} for r in deliveries)
            return True

    @staticmethod
    def _apply(item: dict[str, Any], fields: Fields) -> None:
        for name, value in fields.items():
            if value is None:
                item.pop(name, None)
            else:
                item[name] = int(value) if name in NUMBERS else str(value)
