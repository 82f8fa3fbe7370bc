"""Rejected orders after the intake: the rejection-burst alert, and the operator's correction.

**Burst alert** (:class:`RejectionAlerts`). Each rejection adds one to its store's counter for the
current window of ``window_seconds`` (one atomic ADD in the ledger, made on the rejection path only:
an accepted order costs nothing). The rejection that brings a window's count to ``threshold`` sends
one alert to the alarm topic naming the store and the count — never a secret, a tax id or a
violation's message (only field paths and codes). Windows are fixed (aligned to the clock), so a burst
that straddles two windows is counted in each. A failing count or alert is logged and never changes
what the platform is answered: the order is recorded by then.

**Correction** (:class:`FixRejected`, ``einvoice orders fix``). A ``rejected`` record's event — or,
when its content could not be used, what was read of it (platform, event id, kind, order id) — is
merged with the operator's corrections (:data:`CORRECTABLE` fields of the event), then normalised
and validated again under the store's *current* settings and tax-code table. Still invalid: the
violations are returned and nothing is written. Valid: one conditional write (``CORRECTED``, or
``CORRECTED_HELD`` outside the pilot share) replaces the payload, drops the violations and records
who, when and what changed (``fixed_by``, ``fixed_at``, ``fixed_changes``, ``fixed_violations``); the
record is then ``received`` with its outbox due, its message is sent and it is marked ``queued`` —
from there it is issued like any order (a crash before the send leaves it to the sweeper). A record
keyed by its event id (no order id could be read) is not corrected: its order is unknown, and a
resubmission by the platform would be a second order.

Corrections, as the ``--from-file`` JSON carries them (every key optional; money as decimal strings)::

    {
      "amount": "88.00",                       # what the buyer paid, yuan, tax-inclusive
      "currency": "CNY",
      "buyer": {"title": "…", "tax_id": "…", "type": "company", "address": "…", "phone": "…",
                "bank": "…", "account": "…", "email": "…", "mobile": "…"},
      "lines": [{"sku": "LATTE-L", "name": "…", "quantity": "2", "unit_price": "44.00",
                 "total": "88.00", "discount": "0.00"}],
      "shipping": "0.00", "order_discount": "0.00", "fees": "0.00",
      "refund_amount": "30.00"                 # refunds
    }

``buyer`` is merged field by field into the recorded buyer (``null`` clears a field; ``"buyer": null``
makes the buyer an individual); every other key replaces the recorded value (``lines`` as a whole).
The order's identity (platform, event id, kind, order id, refund id) is its key and never changes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from chalicelib.config import SWEEP_GRACE_SECONDS
from chalicelib.domain.models import PaymentEvent, Store, Violation
from chalicelib.domain.order_keys import keyed_by_event
from chalicelib.domain.order_state import OrderEvent, OrderStatus
from chalicelib.domain.taxcodes import TaxCodeTable
from chalicelib.domain.validation import violation
from chalicelib.services.ingest import assess, hold_reason
from chalicelib.services.ports import AlertPort, OrderRecord, Transition

#: Fields of the event an operator may correct (the invoice-relevant ones).
CORRECTABLE = frozenset({"amount", "currency", "buyer", "lines", "shipping", "order_discount", "fees", "refund_amount"})
#: Fields that make the order key: never corrected.
IDENTITY = frozenset({"platform", "event_id", "kind", "order_id", "refund_id"})


# --- the burst alert -------------------------------------------------------------------------------
class CounterPort(Protocol):
    def count_rejection(self, store_id: str, *, window: int, expires_at: float) -> int: ...


class LoggerPort(Protocol):
    def warning(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class BurstPolicy:
    """An alert when ``threshold`` orders of one store are rejected within one window."""

    threshold: int = 5
    window_seconds: int = 900


class RejectionAlerts:
    def __init__(
        self,
        *,
        counter: CounterPort,
        alerts: AlertPort,
        policy: BurstPolicy,
        logger: LoggerPort,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.counter = counter
        self.alerts = alerts
        self.policy = policy
        self.logger = logger
        self.clock = clock

    def rejected(self, store_id: str, order_key: str, violations: Sequence[Violation]) -> None:
        """Count one rejection; the one that reaches the threshold in its window sends the alert."""
        width = self.policy.window_seconds
        window = int(self.clock() // width)
        try:
            count = self.counter.count_rejection(store_id, window=window, expires_at=(window + 2) * width)
            if count == self.policy.threshold:
                self.alerts.publish(
                    *burst_alert(
                        store_id,
                        count,
                        window_seconds=width,
                        since=window * width,
                        order_key=order_key,
                        violations=violations,
                    )
                )
        except Exception as exc:  # the order is recorded: a lost alert must not change the answer
            self.logger.warning(
                "rejection burst alert failed", extra={"store_id": store_id, "error": exc.__class__.__name__}
            )


def burst_alert(
    store_id: str, count: int, *, window_seconds: int, since: float, order_key: str, violations: Sequence[Violation]
) -> tuple[str, str]:
    """(subject, message) of a burst alert: the store, the count, the latest order's rule codes."""
    minutes = max(1, window_seconds // 60)
    started = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M UTC")
    rules = ", ".join(f"{v.field}: {v.code}" for v in violations[:5]) or "-"
    subject = f"einvoice: {count} orders of store {store_id} rejected within {minutes} min"
    message = (
        f"Store {store_id}: {count} orders rejected since {started} (alert threshold: {count} within "
        f"{minutes} minutes). Rejected orders are kept; nothing is issued for them until corrected.\n"
        f"Latest: {order_key} ({rules})\n"
        f"List them:   einvoice orders list {store_id} --status rejected\n"
        f"Correct one: einvoice orders fix ORDER_KEY --buyer-title … | --from-file corrected.json\n"
        f"A common cause is a store setting (catalogue, invoice limit) or a platform sending a new shape."
    )
    return subject, message


# --- the correction ---------------------------------------------------------------------------------
class FixLedgerPort(Protocol):
    def get_order(self, order_key: str) -> OrderRecord | None: ...
    def mark_queued(self, order_key: str) -> None: ...
    def transition(
        self,
        order_key: str,
        event: OrderEvent,
        *,
        now: float,
        due_at: float | None = None,
        fields: Mapping[str, str | int | None] | None = None,
        payload: dict[str, Any] | None = None,
    ) -> Transition: ...


class FixStorePort(Protocol):
    def get(self, store_id: str) -> Store: ...


class FixTaxCodePort(Protocol):
    def current(self) -> TaxCodeTable: ...


class FixQueuePort(Protocol):
    def send(self, order_key: str, kind: str) -> str: ...


@dataclass(frozen=True)
class FixResult:
    ok: bool
    message: str
    status: OrderStatus | None = None  # where the record stands after a correction
    violations: tuple[Violation, ...] = ()  # why the corrected order is still invalid
    changes: dict[str, Any] = field(default_factory=dict)  # field path → {"from": …, "to": …}


class CorrectionError(ValueError):
    """The corrections themselves are unusable (unknown or identity fields, wrong shape)."""


def merge(event: Mapping[str, Any], corrections: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The event with ``corrections`` applied (see the module docstring) and what changed."""
    unknown = set(corrections) - CORRECTABLE
    if unknown & IDENTITY:
        raise CorrectionError(f"{', '.join(sorted(unknown & IDENTITY))}: part of the order key, never corrected")
    if unknown:
        raise CorrectionError(
            f"unknown field(s) {', '.join(sorted(unknown))}; correctable: {', '.join(sorted(CORRECTABLE))}"
        )
    merged = dict(event)
    changes: dict[str, Any] = {}
    for name, value in corrections.items():
        if name == "buyer" and value is not None:
            if not isinstance(value, Mapping):
                raise CorrectionError("buyer must be an object (or null)")
            before = dict(merged.get("buyer") or {})
            after = {k: v for k, v in {**before, **value}.items() if v is not None}
            for key in sorted(set(before) | set(after)):
                if _plain(before.get(key)) != _plain(after.get(key)):
                    changes[f"buyer.{key}"] = {"from": before.get(key), "to": after.get(key)}
            merged["buyer"] = after or None
            continue
        if _plain(merged.get(name)) != _plain(value):
            changes[name] = {"from": merged.get(name), "to": value}
        merged[name] = value
    return {k: v for k, v in merged.items() if v is not None}, changes


def _plain(value: Any) -> Any:
    """``value`` as JSON has it (a corrected ``Decimal("88.00")`` equals the recorded ``"88.00"``)."""
    return json.loads(json.dumps(value, default=str))


def event_violations(exc: ValidationError) -> tuple[Violation, ...]:
    """A corrected event that is not a valid event, as violations (field path, catalogue code)."""
    found = []
    for error in exc.errors():
        path = ".".join(str(p) for p in error["loc"]) or "event"
        code = "event_field_missing" if error["type"] == "missing" else "event_field_invalid"
        found.append(violation(path, code, field=path, detail=error["msg"]))
    return tuple(found)


class FixRejected:
    def __init__(
        self,
        *,
        ledger: FixLedgerPort,
        stores: FixStorePort,
        taxcodes: FixTaxCodePort,
        queue: FixQueuePort,
        grace_seconds: float = SWEEP_GRACE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.stores = stores
        self.taxcodes = taxcodes
        self.queue = queue
        self.grace_seconds = grace_seconds
        self.clock = clock

    def __call__(self, order_key: str, corrections: Mapping[str, Any], *, by: str) -> FixResult:
        """Correct one rejected order (``corrections`` may be empty: check it again under the store's
        current settings). Raises :class:`CorrectionError` for unusable corrections."""
        record = self.ledger.get_order(order_key)
        if record is None:
            return FixResult(False, f"no order {order_key!r}")
        if record.status is not OrderStatus.REJECTED:
            return FixResult(False, f"order {order_key} is {record.status.value}: only a rejected order is corrected")
        if keyed_by_event(order_key):
            return FixResult(
                False,
                f"order {order_key} is recorded under its event id: its order id could not be read, so it "
                "cannot be corrected here; have the platform send the order again",
            )
        merged, changes = merge(record.payload.get("event") or {}, corrections)
        try:
            event = PaymentEvent.model_validate(merged)
        except ValidationError as exc:
            return FixResult(
                False, f"order {order_key} is still invalid; nothing changed", violations=event_violations(exc)
            )
        store = self.stores.get(record.store_id)
        found = assess(store, event, self.taxcodes.current)
        if found.errors:
            return FixResult(False, f"order {order_key} is still invalid; nothing changed", violations=found.errors)
        now = self.clock()
        held = hold_reason(store, event.order_id)
        done = self.ledger.transition(
            order_key,
            OrderEvent.CORRECTED_HELD if held else OrderEvent.CORRECTED,
            now=now,
            due_at=None if held else now + self.grace_seconds,
            payload=found.payload,
            fields={
                "fixed_by": by,
                "fixed_at": datetime.fromtimestamp(now, UTC).isoformat(),
                "fixed_changes": json.dumps(changes, ensure_ascii=False, default=str),
                "fixed_violations": json.dumps(record.violations or [], ensure_ascii=False),
            },
        )
        if not done.ok:
            now_status = done.before.status.value if done.before else "gone"
            return FixResult(False, f"order {order_key} changed meanwhile (now {now_status}); nothing done")
        if held:
            return FixResult(True, f"order {order_key} corrected and held: {held}", OrderStatus.HELD, changes=changes)
        self.queue.send(order_key, record.kind)
        self.ledger.mark_queued(order_key)
        return FixResult(
            True, f"order {order_key} corrected and queued for issuing", OrderStatus.QUEUED, changes=changes
        )
