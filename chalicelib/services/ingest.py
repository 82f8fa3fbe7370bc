"""Ingest one webhook: verify → normalise → validate → record → enqueue, and say what happened.

The use case sees ports (store registry, secrets, ledger, queue, tax-code source), never boto3, so it
runs the same against moto, the local stack and fakes. Its promise to the platform: an ``accepted``
result (2xx) is returned only after the message is in SQS — or, for a pilot store's manual share, after
the order is durably recorded as ``held``.

Duplicates: there is no separate event record; the order record's own conditional put is the check.
The record is put under the order key (``order_state.order_key``: store, platform, order id
[, refund]) only if absent or rejected; a refused put returns the existing record. A re-delivery (same
event id) and a re-signed one (new event id) of the same order map to the same key. The answer means:

- no record, or only a rejected one → written (a rejected order may be resubmitted: it replaces the
  rejected record, and is rejected again if still invalid);
- ``received`` (recorded, its message never known to be in SQS: a crash or an SQS failure between the
  two writes) → *not* a duplicate: it is enqueued now (the outbox — see ``chalicelib/adapters/ledger.py``);
- anything else → ``duplicate`` with the existing status. This holds even when the delivery would now
  fail validation (the tax-code table or the store changed since): an accepted order is never answered
  422, or the platform would retry it for days.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from chalicelib.config import MAX_WEBHOOK_BYTES
from chalicelib.domain.errors import IgnoredEvent, PayloadTooLarge, UnknownPlatform, ValidationFailed
from chalicelib.domain.models import EventKind, PaymentEvent, Store, Violation
from chalicelib.domain.normalise import normalise, order_key_for, refund_event_problems
from chalicelib.domain.order_state import OrderStatus, parse_status
from chalicelib.domain.taxcodes import TaxCodeTable
from chalicelib.domain.validation import check
from chalicelib.services.ports import OrderRecord
from chalicelib.webhooks import platform as platform_module


class StorePort(Protocol):
    def get(self, store_id: str) -> Store: ...


class SecretPort(Protocol):
    def get_json(self, name: str) -> dict[str, Any]: ...


class LedgerPort(Protocol):
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
    ) -> OrderRecord | None:
        """Put the record if no record, or only a rejected one, has the key: None when written, else
        the existing record (never a rejected one), read by the refused write itself."""
        ...

    def get_order(self, order_key: str) -> OrderRecord | None: ...
    def mark_queued(self, order_key: str) -> None: ...


class QueuePort(Protocol):
    def send(self, order_key: str, kind: str) -> str: ...


class TaxCodePort(Protocol):
    def current(self) -> TaxCodeTable: ...


@dataclass(frozen=True)
class IngestResult:
    outcome: str  # "queued" | "duplicate" | "held"
    order_key: str
    status: OrderStatus
    event: PaymentEvent | None = None
    warnings: tuple[Violation, ...] = field(default_factory=tuple)
    batch: tuple[IngestResult, ...] = ()  # every message's result when one push carried several


def in_pilot(store: Store, order_id: str) -> bool:
    """Deterministic share: the same order (and its refunds) always falls on the same side."""
    if store.pilot_percentage >= 100:
        return True
    # Hashes ``store:order_id``, deliberately not the order key: a store's pilot split must not move
    # when the key format changes (it gained the platform), or orders would change side mid-pilot.
    bucket = int(hashlib.sha256(f"{store.store_id}:{order_id}".encode()).hexdigest()[:8], 16) % 100
    return bucket < store.pilot_percentage


class Ingest:
    def __init__(
        self, *, stores: StorePort, secrets: SecretPort, ledger: LedgerPort, queue: QueuePort, taxcodes: TaxCodePort
    ) -> None:
        self.stores = stores
        self.secrets = secrets
        self.ledger = ledger
        self.queue = queue
        self.taxcodes = taxcodes

    def __call__(
        self, platform: str, store_id: str, raw_body: bytes, headers: Mapping[str, str], now: datetime
    ) -> IngestResult:
        if len(raw_body) > MAX_WEBHOOK_BYTES:
            raise PayloadTooLarge(f"body of {len(raw_body)} bytes is over {MAX_WEBHOOK_BYTES}")
        module = platform_module(platform)
        store = self.stores.get(store_id)
        secret_name = store.webhook_secrets.get(platform)
        if not secret_name:
            raise UnknownPlatform(
                f"store {store_id} does not accept {platform} webhooks", code="platform_not_configured"
            )
        secrets = self.secrets.get_json(secret_name)
        if hasattr(module, "verify_all"):  # platforms that batch several messages in one push (抖店)
            events: list[PaymentEvent] = module.verify_all(raw_body, headers, secrets, now)
            if not events:
                raise IgnoredEvent("no message of this push needs an invoice")
        else:
            events = [module.verify(raw_body, headers, secrets, now)]
        if len(events) == 1:
            return self._one(store, events[0])
        # A batch: every message is recorded (accepted or rejected for the operator); the push is
        # refused only when none could be accepted, so one bad message never blocks the others.
        results: list[IngestResult] = []
        rejected: list[Violation] = []
        for event in events:
            try:
                results.append(self._one(store, event))
            except ValidationFailed as exc:
                rejected.extend(exc.violations)
        if not results:
            raise ValidationFailed(rejected)
        first = results[0]
        return IngestResult(first.outcome, first.order_key, first.status, first.event, first.warnings, tuple(results))

    def _one(self, store: Store, event: PaymentEvent) -> IngestResult:
        order_key = order_key_for(store, event)
        payload, warnings, errors = self._payload(store, event)
        auto = store.active and in_pilot(store, event.order_id)
        status = OrderStatus.RECEIVED if auto else OrderStatus.HELD
        if errors:
            status = OrderStatus.REJECTED  # kept for the operator and for a later resubmission
        # The one write of the hot path, and the duplicate check: refused when a record that is not
        # rejected exists, which it then returns (see the module docstring).
        existing = self.ledger.create_order(
            order_key,
            store.store_id,
            kind=event.kind.value,
            status=status,
            payload=payload,
            outbox=status is OrderStatus.RECEIVED,
            violations=[v.as_dict() for v in errors] or None,
        )
        if existing is not None:
            # Checked before the errors: an order accepted earlier stays accepted, whatever it would
            # be answered today (a 422 would make the platform retry it for days).
            if existing.status == OrderStatus.RECEIVED and existing.outbox_pending:
                return self._enqueue(existing.order_key, existing.kind, event)  # recorded, never queued
            return IngestResult("duplicate", existing.order_key, parse_status(existing.status), event)
        if errors:
            raise ValidationFailed(errors)
        if status is OrderStatus.HELD:
            return IngestResult("held", order_key, status, event, warnings)
        return self._enqueue(order_key, event.kind.value, event, warnings)

    def _enqueue(
        self, order_key: str, kind: str, event: PaymentEvent, warnings: tuple[Violation, ...] = ()
    ) -> IngestResult:
        self.queue.send(order_key, kind)
        self.ledger.mark_queued(order_key)
        return IngestResult("queued", order_key, OrderStatus.QUEUED, event, warnings)

    def _payload(
        self, store: Store, event: PaymentEvent
    ) -> tuple[dict[str, Any], tuple[Violation, ...], list[Violation]]:
        """The record's payload, its warnings, and the errors that reject it (the payload of a
        rejected order is the event alone)."""
        record: dict[str, Any] = {"event": event.model_dump(mode="json")}
        if event.kind is EventKind.REFUNDED:
            return record, (), refund_event_problems(event)
        table = self.taxcodes.current()
        try:
            order = normalise(event, store, table=table)
        except ValidationFailed as exc:
            return record, (), list(exc.violations)
        report = check(
            order,
            table=table,
            buyer_checksum_policy=store.buyer_checksum_policy,
            single_invoice_limit=store.single_invoice_limit,
        )
        if report.errors:
            return record, (), list(report.errors)
        record["order"] = order.model_dump(mode="json")
        record["warnings"] = [w.as_dict() for w in report.warnings]
        record["taxcodes_version"] = table.version
        return record, report.warnings, []
