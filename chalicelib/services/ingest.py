"""Ingest one webhook: verify → normalise → validate → record → enqueue, and say what happened.

The use case sees ports (store registry, secrets, ledger, queue, tax-code source), never boto3, so it
runs the same against moto, the local stack and fakes. Its promise to the platform: an ``accepted``
result (2xx) is returned only after the message is in SQS — or, for a pilot store's manual share, after
the order is durably recorded as ``held``.

Duplicates: the platform's event id is remembered; a repeated delivery whose order is already queued
answers ``duplicate`` with the existing status. A repeated delivery whose order was recorded but never
reached SQS (a crash or an SQS failure between the two writes) is *not* a duplicate: it is enqueued now
(the outbox — see ``chalicelib/adapters/ledger.py``). A rejected order may be resubmitted.
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
from chalicelib.domain.normalise import normalise, refund_event_problems
from chalicelib.domain.taxcodes import TaxCodeTable
from chalicelib.domain.validation import check
from chalicelib.webhooks import platform as platform_module


class StorePort(Protocol):
    def get(self, store_id: str) -> Store: ...


class SecretPort(Protocol):
    def get_json(self, name: str) -> dict[str, Any]: ...


class LedgerPort(Protocol):
    def remember_event(self, platform: str, store_id: str, event_id: str, order_key: str) -> str | None: ...
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
    ) -> Any: ...
    def get_order(self, order_key: str) -> Any: ...
    def mark_queued(self, order_key: str) -> None: ...


class QueuePort(Protocol):
    def send(self, order_key: str, kind: str) -> str: ...


class TaxCodePort(Protocol):
    def current(self) -> TaxCodeTable: ...


@dataclass(frozen=True)
class IngestResult:
    outcome: str  # "queued" | "duplicate" | "held"
    order_key: str
    status: str
    event: PaymentEvent | None = None
    warnings: tuple[Violation, ...] = field(default_factory=tuple)
    batch: tuple[IngestResult, ...] = ()  # every message's result when one push carried several


def order_key_for(store: Store, event: PaymentEvent) -> str:
    base = f"{store.store_id}:{event.order_id}"
    if event.kind is EventKind.REFUNDED:
        return f"{base}:refund:{event.refund_id or event.event_id}"
    return base


def in_pilot(store: Store, order_id: str) -> bool:
    """Deterministic share: the same order (and its refunds) always falls on the same side."""
    if store.pilot_percentage >= 100:
        return True
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
            return self._one(platform, store, events[0])
        # A batch: every message is recorded (accepted or rejected for the operator); the push is
        # refused only when none could be accepted, so one bad message never blocks the others.
        results: list[IngestResult] = []
        rejected: list[Violation] = []
        for event in events:
            try:
                results.append(self._one(platform, store, event))
            except ValidationFailed as exc:
                rejected.extend(exc.violations)
        if not results:
            raise ValidationFailed(rejected)
        first = results[0]
        return IngestResult(first.outcome, first.order_key, first.status, first.event, first.warnings, tuple(results))

    def _one(self, platform: str, store: Store, event: PaymentEvent) -> IngestResult:
        order_key = order_key_for(store, event)
        seen = self.ledger.remember_event(platform, store.store_id, event.event_id, order_key)
        if seen is not None:
            existing = self.ledger.get_order(seen)
            if existing is not None:
                if existing.status == "received" and existing.outbox_pending:
                    return self._enqueue(existing.order_key, existing.kind, event)  # recorded, never queued
                if existing.status != "rejected":
                    return IngestResult("duplicate", existing.order_key, existing.status, event)
            # no order record yet (a crash between the two writes) or rejected before: process again

        payload, warnings = self._payload(store, event)
        auto = store.active and in_pilot(store, event.order_id)
        status = "received" if auto else "held"
        existing = self.ledger.create_order(
            order_key, store.store_id, kind=event.kind.value, status=status, payload=payload, outbox=auto
        )
        if existing is not None:
            if existing.status == "received" and existing.outbox_pending:
                return self._enqueue(order_key, existing.kind, event)
            return IngestResult("duplicate", existing.order_key, existing.status, event)
        if not auto:
            return IngestResult("held", order_key, "held", event, warnings)
        return self._enqueue(order_key, event.kind.value, event, warnings)

    def _enqueue(
        self, order_key: str, kind: str, event: PaymentEvent, warnings: tuple[Violation, ...] = ()
    ) -> IngestResult:
        self.queue.send(order_key, kind)
        self.ledger.mark_queued(order_key)
        return IngestResult("queued", order_key, "queued", event, warnings)

    def _payload(self, store: Store, event: PaymentEvent) -> tuple[dict[str, Any], tuple[Violation, ...]]:
        record: dict[str, Any] = {"event": event.model_dump(mode="json")}
        if event.kind is EventKind.REFUNDED:
            problems = refund_event_problems(event)
            if problems:
                self._reject(store, event, problems)
            return record, ()
        table = self.taxcodes.current()
        try:
            order = normalise(event, store, table=table)
        except ValidationFailed as exc:
            self._reject(store, event, list(exc.violations))
        report = check(
            order,
            table=table,
            buyer_checksum_policy=store.buyer_checksum_policy,
            single_invoice_limit=store.single_invoice_limit,
        )
        if report.errors:
            self._reject(store, event, list(report.errors))
        record["order"] = order.model_dump(mode="json")
        record["warnings"] = [w.as_dict() for w in report.warnings]
        record["taxcodes_version"] = table.version
        return record, report.warnings

    def _reject(self, store: Store, event: PaymentEvent, violations: list[Violation]) -> None:
        """Keep the rejected order (for the operator and for a later resubmission), then refuse it."""
        self.ledger.create_order(
            order_key_for(store, event),
            store.store_id,
            kind=event.kind.value,
            status="rejected",
            payload={"event": event.model_dump(mode="json")},
            outbox=False,
            violations=[v.as_dict() for v in violations],
        )
        raise ValidationFailed(violations)
