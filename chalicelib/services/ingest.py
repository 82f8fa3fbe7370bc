"""Ingest one webhook: verify → normalise → validate → record → enqueue, and say what happened.

The use case sees ports (store registry, secrets, ledger, queue, tax-code source), never boto3, so it
runs the same against moto, the local stack and fakes. Its promise to the platform: an ``accepted``
result (2xx) is returned only after the message is in SQS — or, for a pilot store's manual share, after
the order is durably recorded as ``held``.

Rejected orders are kept. Once the signature holds, every event is recorded: one that breaks an
invoice rule, and one whose signed content cannot be used at all (a negative or non-numeric amount, a
missing field: the platform module's ``UnusableContent``), are recorded as ``rejected`` with every
violation, for the operator to correct (``einvoice orders fix``, ``chalicelib/services/rejections.py``)
or for a corrected resubmission to replace. An event whose order id cannot be read is recorded under
``order_keys.event_order_key`` and says so (violation ``event_order_id_unreadable``). What the platform
is answered for a rejected order is the store's choice per platform, defaults in
:func:`rejection_reply_for`: a refusal (``OrderRejected``: 422 with the violations) or an
acknowledgement (the platform's own success answer). Each rejection is counted for the store's
rejection-burst alert (``RejectionAlertPort``), on the rejection path only.

Duplicates: the order record's own conditional put is the check, and the event id is recorded in the
same single write (``LedgerPort.create_order(event_id=…)``: one DynamoDB transaction, so one call as
before). The record is put under the order key (``order_keys.order_key``: store, platform, order id
[, refund]) only if absent or rejected; a refused put returns the existing record. A re-delivery (same
event id) and a re-signed one (new event id) of the same order map to the same key. The answer means:

- no record, or only a rejected one → written (a rejected order may be resubmitted: it replaces the
  rejected record, and is rejected again if still invalid);
- ``received`` (recorded, its message never known to be in SQS: a crash or an SQS failure between the
  two writes) → *not* a duplicate: it is enqueued now (the outbox — see ``chalicelib/adapters/ledger.py``);
- anything else → ``duplicate`` with the existing status. This holds even when the delivery would now
  fail validation (the tax-code table or the store changed since): an accepted order is never answered
  422, or the platform would retry it for days.

An event id already recorded with a *different* order is a conflict, never a duplicate
(``chalicelib/domain/event_ids.py``): the ledger writes nothing and names the order holding the id
(``EventIdHeld``); the order is then recorded — nothing is lost — as ``rejected`` with the violation
``event_id_conflict`` naming the other order key (a second write, without the event id, on this path
only), counted for the rejection alert, and answered as a conflict: ``EventIdConflict`` (409) where the
store refuses rejected orders of the platform, the platform's acknowledgement (``IngestResult.conflict``
set) where it acknowledges them. The existing order comes first: an order already recorded is a
duplicate whatever event id its delivery carries. No event id is recorded for the platforms of
:data:`EVENT_IDS_SHARED`, whose ids do not name one order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from chalicelib.config import MAX_WEBHOOK_BYTES
from chalicelib.domain.errors import (
    OrderRejected,
    PayloadTooLarge,
    UnknownPlatform,
    UnusableContent,
    ValidationFailed,
)
from chalicelib.domain.event_ids import EventIdConflict, EventIdHeld, conflict_violation
from chalicelib.domain.models import EventKind, PaymentEvent, RejectionReply, Store, Violation
from chalicelib.domain.normalise import normalise, order_key_for, refund_event_problems
from chalicelib.domain.order_keys import event_order_key, order_key
from chalicelib.domain.order_state import OrderStatus, parse_status
from chalicelib.domain.taxcodes import TaxCodeTable
from chalicelib.domain.validation import check, violation
from chalicelib.services.ports import OrderRecord
from chalicelib.services.verify import SecretPort, verify_delivery
from chalicelib.webhooks import platform as platform_module

#: What a rejected record keeps of a body whose content could not be used (for the operator's eyes).
BODY_EXCERPT_BYTES = 8 * 1024
#: Why an order is held, as the answer says it (``reason`` → message).
HELD_REASONS: dict[str, str] = {
    "store_inactive": "the store is inactive: the order is recorded as held and issued by hand",
    "pilot_share": "the order is outside the store's pilot share: it is recorded as held and issued by hand",
}
#: Platforms whose retries cannot fix an order (payment rails and shop platforms that resend the same
#: message for a day and show nobody the answer): a rejected order is acknowledged there by default.
ACKNOWLEDGED_BY_DEFAULT = frozenset({"wechatpay", "alipay", "douyin", "youzan"})
#: Platforms whose event id does not name one order, so no conflict is looked for: WooCommerce's
#: ``X-WC-Webhook-Delivery-ID`` is ``wp_hash(webhook id . the current second)`` (``WC_Webhook::
#: get_new_delivery_id``), the same for every delivery of one webhook within a second.
EVENT_IDS_SHARED = frozenset({"woocommerce"})


class StorePort(Protocol):
    def get(self, store_id: str) -> Store: ...


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
        event_id: str | None = None,
    ) -> OrderRecord | EventIdHeld | None:
        """Put the record if no record, or only a rejected one, has the key: None when written, else
        the existing record (never a rejected one), read by the refused write itself. ``event_id`` is
        recorded in the same write; when another order holds it, nothing is written (``EventIdHeld``)."""
        ...

    def get_order(self, order_key: str) -> OrderRecord | None: ...
    def mark_queued(self, order_key: str) -> None: ...


class QueuePort(Protocol):
    def send(self, order_key: str, kind: str) -> str: ...


class TaxCodePort(Protocol):
    def current(self) -> TaxCodeTable: ...


class RejectionAlertPort(Protocol):
    def rejected(self, store_id: str, order_key: str, violations: Sequence[Violation]) -> None:
        """Count one rejection of the store (its burst alert); never raises."""
        ...


@dataclass(frozen=True)
class IngestResult:
    outcome: str  # "queued" | "duplicate" | "held" | "rejected" (recorded and acknowledged)
    order_key: str
    status: OrderStatus
    event: PaymentEvent | None = None
    warnings: tuple[Violation, ...] = field(default_factory=tuple)
    batch: tuple[IngestResult, ...] = ()  # every message's result when one push carried several
    violations: tuple[Violation, ...] = ()  # outcome "rejected": every broken rule
    reason: str | None = None  # outcome "held": a key of HELD_REASONS
    conflict: str | None = None  # outcome "rejected" for a reused event id: the order key that holds it


def in_pilot(store: Store, order_id: str) -> bool:
    """Deterministic share: the same order (and its refunds) always falls on the same side."""
    if store.pilot_percentage >= 100:
        return True
    # Hashes ``store:order_id``, deliberately not the order key: a store's pilot split must not move
    # when the key format changes (it gained the platform), or orders would change side mid-pilot.
    bucket = int(hashlib.sha256(f"{store.store_id}:{order_id}".encode()).hexdigest()[:8], 16) % 100
    return bucket < store.pilot_percentage


def hold_reason(store: Store, order_id: str) -> str | None:
    """Why an order of ``store`` is held rather than issued automatically (None: it is issued)."""
    if not store.active:
        return "store_inactive"
    if not in_pilot(store, order_id):
        return "pilot_share"
    return None


def rejection_reply_for(store: Store, platform: str) -> RejectionReply:
    """What ``platform`` is answered when an order of ``store`` breaks a rule (the order is recorded as
    rejected either way): the store's ``rejection_replies`` entry, else the one default — a refusal
    (422 with the violations) for platforms whose integrators read the answer (Standard Webhooks,
    Stripe, Shopify, WooCommerce), an acknowledgement (the platform's success answer) for those whose
    retries cannot fix the order (WeChat Pay, Alipay, 抖店, 有赞)."""
    chosen = store.rejection_replies.get(platform)
    if chosen is not None:
        return chosen
    return RejectionReply.ACKNOWLEDGE if platform in ACKNOWLEDGED_BY_DEFAULT else RejectionReply.REFUSE


@dataclass(frozen=True)
class Assessment:
    """An event judged under a store's current settings: the record's payload, warnings, errors."""

    payload: dict[str, Any]
    warnings: tuple[Violation, ...]
    errors: tuple[Violation, ...]


def assess(store: Store, event: PaymentEvent, table: Callable[[], TaxCodeTable]) -> Assessment:
    """Normalise and validate ``event`` for ``store`` (``table``: the current tax-code table, read
    only for a paid event). The payload of a rejected order is the event alone."""
    record: dict[str, Any] = {"event": event.model_dump(mode="json")}
    if event.kind is EventKind.REFUNDED:
        return Assessment(record, (), tuple(refund_event_problems(event)))
    codes = table()
    try:
        order = normalise(event, store, table=codes)
    except ValidationFailed as exc:
        return Assessment(record, (), exc.violations)
    report = check(
        order,
        table=codes,
        buyer_checksum_policy=store.buyer_checksum_policy,
        single_invoice_limit=store.single_invoice_limit,
    )
    if report.errors:
        return Assessment(record, (), report.errors)
    record["order"] = order.model_dump(mode="json")
    record["warnings"] = [w.as_dict() for w in report.warnings]
    record["taxcodes_version"] = codes.version
    return Assessment(record, report.warnings, ())


class Ingest:
    def __init__(
        self,
        *,
        stores: StorePort,
        secrets: SecretPort,
        ledger: LedgerPort,
        queue: QueuePort,
        taxcodes: TaxCodePort,
        rejections: RejectionAlertPort | None = None,
    ) -> None:
        self.stores = stores
        self.secrets = secrets
        self.ledger = ledger
        self.queue = queue
        self.taxcodes = taxcodes
        self.rejections = rejections

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
        # the secret re-read once past the cache when no cached value verifies (services/verify.py)
        items = verify_delivery(module, raw_body, headers, now, secrets=self.secrets, secret_name=secret_name)
        # Every message is recorded (accepted, or rejected for the operator); a push is refused only
        # when none could be accepted and the store refuses rejected orders of this platform, so one
        # bad message never blocks the others.
        results = [self._item(store, platform, item, raw_body) for item in items]
        accepted = [r for r in results if r.outcome != "rejected"]
        if not accepted and rejection_reply_for(store, platform) is RejectionReply.REFUSE:
            violations = [v for r in results for v in r.violations]
            conflicted = next((r for r in results if r.conflict), None)
            if conflicted is not None and conflicted.conflict:
                raise EventIdConflict(violations, order_key=conflicted.order_key, held_by=conflicted.conflict)
            raise OrderRejected(violations, order_key=results[0].order_key)
        first = (accepted or results)[0]
        if len(results) == 1:
            return first
        return IngestResult(
            first.outcome,
            first.order_key,
            first.status,
            first.event,
            first.warnings,
            tuple(results),
            first.violations,
            first.reason,
            first.conflict,
        )

    def _item(self, store: Store, platform: str, item: PaymentEvent | UnusableContent, raw_body: bytes) -> IngestResult:
        if isinstance(item, UnusableContent):
            return self._unusable(store, platform, item, raw_body)
        return self._one(store, item)

    def _one(self, store: Store, event: PaymentEvent) -> IngestResult:
        order_key = order_key_for(store, event)
        found = assess(store, event, self.taxcodes.current)
        held = hold_reason(store, event.order_id)
        status = OrderStatus.HELD if held else OrderStatus.RECEIVED
        if found.errors:
            status = OrderStatus.REJECTED  # kept for the operator and for a later resubmission
        # The one write of the hot path, and the duplicate check: refused when a record that is not
        # rejected exists, which it then returns (see the module docstring).
        event_id = None if event.platform in EVENT_IDS_SHARED else event.event_id
        existing = self._write(
            store, order_key, event, event_id, status=status, payload=found.payload, violations=found.errors
        )
        if isinstance(existing, IngestResult):  # the event id is another order's
            return existing
        if existing is not None:
            return self._existing(existing, event)
        if found.errors:
            return self._rejected(store, order_key, event, found.errors)
        if held:
            return IngestResult("held", order_key, status, event, found.warnings, reason=held)
        return self._enqueue(order_key, event.kind.value, event, found.warnings)

    def _unusable(self, store: Store, platform: str, exc: UnusableContent, raw_body: bytes) -> IngestResult:
        """Record a signed event whose content cannot be used as rejected: under its order key when the
        module could read the order id, else under a key made of the event id (and the answer says so)."""
        event_id = exc.event_id or "body-sha256:" + hashlib.sha256(raw_body).hexdigest()[:32]
        kind = exc.kind if exc.kind in (EventKind.PAID.value, EventKind.REFUNDED.value) else None
        violations = list(exc.violations)
        refund_id = (exc.refund_id or event_id) if kind == EventKind.REFUNDED.value else None
        if kind and exc.order_id:
            key = order_key(store.store_id, platform, exc.order_id, refund_id)
        else:
            key = event_order_key(store.store_id, platform, event_id)
            violations.append(violation("order_id", "event_order_id_unreadable", event_id=event_id))
        known = {"platform": platform, "event_id": event_id, "kind": kind, "order_id": exc.order_id}
        payload = {
            "event": {k: v for k, v in {**known, "refund_id": refund_id}.items() if v is not None},
            "body": raw_body[:BODY_EXCERPT_BYTES].decode("utf-8", errors="replace"),
        }
        existing = self._write(
            store,
            key,
            None,
            None if platform in EVENT_IDS_SHARED else exc.event_id,  # the platform's own id only
            status=OrderStatus.REJECTED,
            payload=payload,
            violations=violations,
            kind=kind,
        )
        if isinstance(existing, IngestResult):  # the event id is another order's
            return existing
        if existing is not None:  # an accepted order stays accepted, whatever a re-delivery now holds
            return self._existing(existing, None)
        return self._rejected(store, key, None, violations)

    def _write(
        self,
        store: Store,
        key: str,
        event: PaymentEvent | None,
        event_id: str | None,
        *,
        status: OrderStatus,
        payload: dict[str, Any],
        violations: Sequence[Violation],
        kind: str | None = None,
    ) -> OrderRecord | IngestResult | None:
        """Record the order with its event id: None when written, the existing record, or — the event
        id being another order's — the conflict, the order recorded as rejected (see the docstring)."""
        kind = kind or (event.kind.value if event else EventKind.PAID.value)
        written = self.ledger.create_order(
            key,
            store.store_id,
            kind=kind,
            status=status,
            payload=payload,
            outbox=status is OrderStatus.RECEIVED,
            violations=[v.as_dict() for v in violations] or None,
            event_id=event_id,
        )
        if not isinstance(written, EventIdHeld):
            return written
        conflicting = (conflict_violation(written), *violations)
        existing = self.ledger.create_order(  # without the event id: it is the other order's
            key,
            store.store_id,
            kind=kind,
            status=OrderStatus.REJECTED,
            payload={k: v for k, v in payload.items() if k in ("event", "body")},  # a rejected order's
            outbox=False,
            violations=[v.as_dict() for v in conflicting],
        )
        if isinstance(existing, OrderRecord):  # recorded meanwhile by another delivery of this order
            return self._existing(existing, event)
        return replace(self._rejected(store, key, event, conflicting), conflict=written.order_key)

    def _existing(self, existing: OrderRecord, event: PaymentEvent | None) -> IngestResult:
        # Checked before the errors: an order accepted earlier stays accepted, whatever it would be
        # answered today (a 422 would make the platform retry it for days).
        if existing.status == OrderStatus.RECEIVED and existing.outbox_pending:
            return self._enqueue(existing.order_key, existing.kind, event)  # recorded, never queued
        return IngestResult("duplicate", existing.order_key, parse_status(existing.status), event)

    def _rejected(
        self, store: Store, order_key: str, event: PaymentEvent | None, violations: Sequence[Violation]
    ) -> IngestResult:
        if self.rejections is not None:
            self.rejections.rejected(store.store_id, order_key, violations)
        return IngestResult("rejected", order_key, OrderStatus.REJECTED, event, violations=tuple(violations))

    def _enqueue(
        self, order_key: str, kind: str, event: PaymentEvent | None, warnings: tuple[Violation, ...] = ()
    ) -> IngestResult:
        self.queue.send(order_key, kind)
        self.ledger.mark_queued(order_key)
        return IngestResult("queued", order_key, OrderStatus.QUEUED, event, warnings)
