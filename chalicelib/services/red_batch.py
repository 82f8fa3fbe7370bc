"""Batch reversal (红冲): a list of orders or invoice numbers → one full-refund record per blue invoice.

Each item becomes what a refund webhook makes: a ``refunded`` record under the refund order key
``<blue key>:refund:batch-<blue invoice number>``, payload ``{"event": <PaymentEvent>, "red_reason":
<01–04>}``, written as the intake writes it (``create_order`` with the outbox, the message on the issue
queue, then ``queued``) — so the red flow (``chalicelib/services/red.py``) reverses it with its own
exactly-once machinery. The refund id is deterministic per blue invoice, so running a batch again
finds every record already there and changes nothing.

:meth:`RedBatch.plan` is the dry run (reads only): what would be reversed (what is left on each blue:
its total minus what red invoices took or reserved), what is refused and why — ``unknown`` (no such
order / number in the store), ``not_issued`` (the blue is not ``issued``), ``already_reversed``
(nothing left), ``already_requested`` (this batch's record exists: the second run), ``other_store``
(the operator does not hold the store). :meth:`RedBatch.execute` writes one planned item.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from chalicelib.domain.models import EventKind, InvoiceOrder, PaymentEvent, RedReason
from chalicelib.domain.order_keys import order_key, parse_order_key
from chalicelib.domain.order_state import OrderStatus
from chalicelib.domain.red_allocation import RefundBook
from chalicelib.services.ports import OrderRecord

INVOICE_NUMBER = re.compile(r"^\d{20}$")
#: The refund id of a batch reversal of blue invoice ``number`` (deterministic: a re-run is a no-op).
BATCH_REFUND_PREFIX = "batch-"
#: Plan actions.
REVERSE, REFUSED = "reverse", "refused"
RESULT_COLUMNS = ("item", "order_key", "invoice_number", "refund_key", "outcome", "amount", "detail")


def batch_refund_id(invoice_number: str) -> str:
    return BATCH_REFUND_PREFIX + invoice_number


class BatchLedger(Protocol):
    def get_order(self, order_key: str) -> OrderRecord | None: ...

    def store_records(
        self, store_id: str, *, since: str, statuses: frozenset[OrderStatus] | None = None, limit: int = 1000
    ) -> list[OrderRecord]: ...

    def create_order(
        self,
        order_key: str,
        store_id: str,
        *,
        kind: str,
        status: str,
        payload: dict[str, Any],
        outbox: bool,
    ) -> object: ...

    def mark_queued(self, order_key: str) -> None: ...


class BatchQueue(Protocol):
    def send(self, order_key: str, kind: str) -> str: ...


@dataclass(frozen=True)
class PlanItem:
    item: str
    action: str  # reverse | refused
    reason: str = ""  # why refused (a code of the module docstring)
    order_key: str = ""
    invoice_number: str = ""
    refund_key: str = ""
    amount: Decimal = Decimal("0.00")  # what the red invoice takes (tax-inclusive yuan)
    detail: str = ""


@dataclass(frozen=True)
class Plan:
    reason: RedReason
    items: list[PlanItem]

    @property
    def to_reverse(self) -> list[PlanItem]:
        return [i for i in self.items if i.action == REVERSE]

    @property
    def refused(self) -> list[PlanItem]:
        return [i for i in self.items if i.action == REFUSED]

    @property
    def total(self) -> Decimal:
        return sum((i.amount for i in self.to_reverse), Decimal("0.00"))

    def as_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason.value,
            "count": len(self.to_reverse),
            "total": str(self.total),
            "refused": len(self.refused),
            "items": [{**asdict(i), "amount": str(i.amount)} for i in self.items],
        }


@dataclass(frozen=True)
class ItemResult:
    item: str
    order_key: str
    invoice_number: str
    refund_key: str
    outcome: str  # queued | unchanged | refused
    amount: Decimal
    detail: str = ""

    def row(self) -> dict[str, str]:
        return {**{k: str(v) for k, v in asdict(self).items()}, "amount": str(self.amount)}


def parse_items(text: str) -> list[str]:
    """Order keys or 20-digit invoice numbers from a CSV or text file: every non-empty cell, in order,
    de-duplicated; a header cell (``order_key``, ``invoice_number`` …) and ``#`` comments are skipped."""
    seen: dict[str, None] = {}
    for row in csv.reader(io.StringIO(text)):
        for cell in row:
            value = cell.strip()
            if not value or value.startswith("#") or value.lower() in {"order_key", "invoice_number", "item", "key"}:
                continue
            seen.setdefault(value, None)
    return list(seen)


def write_results(results: Iterable[ItemResult]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=RESULT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow(r.row())
    return out.getvalue()


def _remaining(blue: OrderRecord) -> Decimal:
    order = InvoiceOrder.model_validate(blue.payload["order"])
    book = RefundBook.of(blue.fields)
    taken = sum((sum(v.values(), Decimal(0)) for v in book.entries.values()), Decimal(0))
    return max(Decimal("0.00"), (order.total - taken).quantize(Decimal("0.01")))


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RedBatch:
    def __init__(self, *, ledger: BatchLedger, queue: BatchQueue, clock: Callable[[], datetime] = _utcnow) -> None:
        self.ledger, self.queue, self.clock = ledger, queue, clock

    # --- the dry run ---------------------------------------------------------------------------------
    def plan(
        self,
        items: Sequence[str],
        reason: RedReason,
        *,
        store_id: str | None = None,
        stores: frozenset[str] | None = None,
    ) -> Plan:
        """What a batch would do (reads only). ``store_id``: where invoice numbers are looked up (and the
        only store an item may be of); ``stores``: the stores the caller may touch (None: any)."""
        numbers: dict[str, OrderRecord] | None = None
        planned: list[PlanItem] = []
        for item in items:
            if INVOICE_NUMBER.match(item):
                if store_id is None:
                    planned.append(PlanItem(item, REFUSED, "unknown", detail="invoice numbers need --store"))
                    continue
                if numbers is None:
                    numbers = self._numbers(store_id)
                blue = numbers.get(item)
                if blue is None:
                    planned.append(PlanItem(item, REFUSED, "unknown", invoice_number=item, detail="no issued invoice"))
                    continue
            else:
                try:
                    key = parse_order_key(item)
                except ValueError:
                    planned.append(PlanItem(item, REFUSED, "unknown", detail="neither an order key nor 20 digits"))
                    continue
                if key.is_refund:
                    planned.append(PlanItem(item, REFUSED, "unknown", detail="a refund record, not an order"))
                    continue
                if (store_id and key.store_id != store_id) or (stores is not None and key.store_id not in stores):
                    planned.append(PlanItem(item, REFUSED, "other_store", order_key=item))
                    continue
                found = self.ledger.get_order(item)
                if found is None:
                    planned.append(PlanItem(item, REFUSED, "unknown", order_key=item, detail="no such order"))
                    continue
                blue = found
            planned.append(self._judge(item, blue))
        return Plan(reason, planned)

    def _numbers(self, store_id: str) -> dict[str, OrderRecord]:
        """The store's issued blue invoices by number (a ``by_store`` query of the store, no scan)."""
        found = self.ledger.store_records(store_id, since="0", statuses=frozenset({OrderStatus.ISSUED}), limit=100_000)
        return {
            str(r.text("invoice_number")): r
            for r in found
            if r.text("invoice_number") and not parse_order_key(r.order_key).is_refund
        }

    def _judge(self, item: str, blue: OrderRecord) -> PlanItem:
        number = blue.text("invoice_number") or ""
        if blue.status is not OrderStatus.ISSUED or not number:
            return PlanItem(item, REFUSED, "not_issued", order_key=blue.order_key, detail=f"status {blue.status.value}")
        key = parse_order_key(blue.order_key)
        refund_key = order_key(key.store_id, key.platform, key.order_id, batch_refund_id(number))
        existing = self.ledger.get_order(refund_key)
        if existing is not None:
            return PlanItem(
                item,
                REFUSED,
                "already_requested",
                blue.order_key,
                number,
                refund_key,
                detail=f"this batch reversal exists ({existing.status.value})",
            )
        left = _remaining(blue)
        if left <= 0:
            return PlanItem(
                item, REFUSED, "already_reversed", blue.order_key, number, refund_key, detail="nothing left"
            )
        return PlanItem(item, REVERSE, "", blue.order_key, number, refund_key, left)

    # --- the run -------------------------------------------------------------------------------------
    def execute(self, item: PlanItem, reason: RedReason) -> ItemResult:
        """Write one planned item's refund record and queue it (as the intake does); a record already
        there (a second run, or a concurrent one) is ``unchanged``."""
        if item.action != REVERSE:
            outcome = "unchanged" if item.reason == "already_requested" else "refused"
            return ItemResult(
                item.item,
                item.order_key,
                item.invoice_number,
                item.refund_key,
                outcome,
                Decimal("0.00"),
                f"{item.reason}: {item.detail}".rstrip(": "),
            )
        blue = parse_order_key(item.order_key)
        record = self.ledger.get_order(item.order_key)
        paid = InvoiceOrder.model_validate(record.payload["order"]).total if record is not None else item.amount
        refund_id = batch_refund_id(item.invoice_number)
        event = PaymentEvent(
            platform=blue.platform,
            event_id=f"{refund_id}-{reason.value}",
            kind=EventKind.REFUNDED,
            order_id=blue.order_id,
            amount=max(paid, item.amount),
            refund_id=refund_id,
            refund_amount=item.amount,
            occurred_at=self.clock(),
            event_type="batch_reversal",
        )
        payload = {"event": event.model_dump(mode="json"), "red_reason": reason.value, "batch": True}
        existing = self.ledger.create_order(
            item.refund_key,
            blue.store_id,
            kind=EventKind.REFUNDED.value,
            status="received",
            payload=payload,
            outbox=True,
        )
        if existing is not None:
            return ItemResult(
                item.item,
                item.order_key,
                item.invoice_number,
                item.refund_key,
                "unchanged",
                Decimal("0.00"),
                "already requested",
            )
        self.queue.send(item.refund_key, EventKind.REFUNDED.value)
        self.ledger.mark_queued(item.refund_key)
        return ItemResult(item.item, item.order_key, item.invoice_number, item.refund_key, "queued", item.amount)

    def run(self, plan: Plan, *, each: Callable[[ItemResult], None] | None = None) -> list[ItemResult]:
        results = []
        for item in plan.items:
            result = self.execute(item, plan.reason)
            results.append(result)
            if each is not None:
                each(result)
        return results
