"""换开: an issued blue invoice re-issued to another title — a full red reversal, then a new blue.

Driven by the order state machine (``chalicelib.domain.order_state``) and the existing flows, never
by a side path:

1. **Request** (the buyer's title form after issue, ``title_request.py``; or
   ``einvoice invoices retitle KEY --title T --tax-id X``): the title is checked by the validator's
   party rules (a company needs a valid tax id); the blue must be ``issued`` with no refund of it in
   the red flow (a partly refunded invoice is the shop's to re-issue). One conditional write moves
   the blue ``issued → reissuing`` (event ``retitle``) with ``title_change``, ``retitle_refund_key``
   and ``reissue_key``; then the **refund record** ``<blue key>:refund:retitle-<blue number>`` is
   created (kind ``refunded``, the blue's whole total, red reason 01 开票有误) and queued — the red
   flow reverses the blue exactly once (the key is deterministic, its serial too).
2. **Red issued** (the red flow's ``on_issued`` listener, :meth:`Retitle.red_issued`): the **new
   blue** ``<store>:<platform>:<order id>%3Areissue%3A<n>`` (``order_keys.reissue_key``) is
   created from the blue's order with the new buyer (contact kept), ``reissue_of`` pointing back, and
   queued: the worker issues it like any order and queues its delivery. Then the old blue moves
   ``reissuing → reissued`` (event ``reissue``).
3. The customer's link (the old key) says 换开处理中 until the new blue is issued, then shows it,
   naming the old number as reversed (``customer_page.CustomerPage.current``).

Every step is idempotent (create-if-absent records, conditional transitions): :meth:`Retitle.resume`
— what the CLI runs again — continues from wherever a crash left it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from chalicelib.domain.event_ids import EventIdHeld
from chalicelib.domain.models import BuyerType, EventKind, InvoiceOrder, PaymentEvent, RedReason, Store, Violation
from chalicelib.domain.order_keys import (
    REISSUE_MARK,
    is_retitle_refund,
    parse_order_key,
    reissue_key,
    retitle_refund_key,
    store_of,
)
from chalicelib.domain.order_state import OrderEvent, OrderStatus
from chalicelib.domain.red_allocation import RefundBook
from chalicelib.services.ports import OrderRecord
from chalicelib.services.red_ports import RedLedger
from chalicelib.services.title_request import TitleForm, check_title


class RetitleLedger(RedLedger, Protocol):
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
    ) -> OrderRecord | EventIdHeld | None: ...

    def mark_queued(self, order_key: str) -> None: ...


class RetitleQueue(Protocol):
    def send(self, order_key: str, kind: str) -> str: ...


class RetitleStores(Protocol):
    def get(self, store_id: str) -> Store: ...


class Step(StrEnum):
    INVALID = "invalid"  # the title breaks the party rules: nothing written
    REFUSED = "refused"  # the record cannot be re-issued (not issued, refunded, a refund record …)
    CONFLICT = "conflict"  # the record changed meanwhile
    REVERSING = "reversing"  # reissuing: the red reversal is queued / under way
    REISSUED = "reissued"  # the red is issued and the new blue queued (or issued)


@dataclass(frozen=True)
class RetitleResult:
    step: Step
    blue_key: str
    refund_key: str | None = None
    reissue_key: str | None = None
    detail: str = ""
    errors: dict[str, list[Violation]] = field(default_factory=dict)


class Retitle:
    def __init__(
        self,
        *,
        ledger: RetitleLedger,
        queue: RetitleQueue,
        stores: RetitleStores,
        logger: Logger,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.queue = queue
        self.stores = stores
        self.log = logger
        self.clock = clock

    # --- 1. the request ---------------------------------------------------------------------------
    def request(
        self, blue_key: str, title: str, tax_id: str, *, individual: bool = False, source: str = "cli"
    ) -> RetitleResult:
        form = TitleForm.of(title, tax_id)
        store = self.stores.get(store_of(blue_key))
        kind = BuyerType.INDIVIDUAL if individual else BuyerType.COMPANY
        errors, _ = check_title(form, store, kind)
        if errors:
            return RetitleResult(Step.INVALID, blue_key, errors=errors)
        record = self.ledger.get_order(blue_key)
        if record is None:
            return RetitleResult(Step.REFUSED, blue_key, detail="no such order")
        if record.status in (OrderStatus.REISSUING, OrderStatus.REISSUED):
            return self.resume(blue_key)
        refused = self._refusal(record)
        if refused:
            return RetitleResult(Step.REFUSED, blue_key, detail=refused)
        number = record.text("invoice_number") or ""
        refund_key = retitle_refund_key(blue_key, number)
        new_key = reissue_key(blue_key, _round(blue_key) + 1)
        change = {
            "title": form.title,
            "tax_id": form.tax_id,
            "type": kind.value,
            "requested_at": datetime.fromtimestamp(self.clock(), UTC).isoformat(),
            "source": source,
            "stage": "after_issue",
        }
        written = self.ledger.transition(
            blue_key,
            OrderEvent.RETITLE,
            now=self.clock(),
            fields={
                "title_change": json.dumps(change, ensure_ascii=False),
                "retitle_refund_key": refund_key,
                "reissue_key": new_key,
            },
        )
        if not written.ok:
            return RetitleResult(Step.CONFLICT, blue_key, detail="the record changed meanwhile: try again")
        self.log.info("换开 requested", extra={"order_key": blue_key, "refund_key": refund_key, "reissue_key": new_key})
        self._start_red(record, refund_key)
        return RetitleResult(Step.REVERSING, blue_key, refund_key, new_key)

    def from_title_change(self, blue_key: str) -> RetitleResult:
        """The title form recorded ``title_change`` (stage ``after_issue``) on an issued blue: 换开 it."""
        record = self.ledger.get_order(blue_key)
        raw = record.text("title_change") if record is not None else None
        if record is None or not raw:
            return RetitleResult(Step.REFUSED, blue_key, detail="no title change recorded")
        change = json.loads(raw)
        individual = change.get("type") == BuyerType.INDIVIDUAL.value
        return self.request(blue_key, change["title"], change.get("tax_id", ""), individual=individual, source="link")

    @staticmethod
    def _refusal(record: OrderRecord) -> str:
        if parse_order_key(record.order_key).is_refund:
            return "a refund record is not re-issued"
        if record.status is not OrderStatus.ISSUED or not record.text("invoice_number"):
            return f"only an issued invoice is re-issued (this one is {record.status.value})"
        if RefundBook.of(record.fields).entries:
            return "the invoice has refunds (red invoices or ones under way): the shop re-issues it by hand"
        if not isinstance(record.payload.get("order"), dict):
            return "the record holds no invoice order"
        return ""

    def _start_red(self, blue: OrderRecord, refund_key: str) -> None:
        """The full reversal as a refund record of the red flow (created once, queued)."""
        k = parse_order_key(refund_key)
        total = Decimal(str(blue.payload["order"]["total"]))
        event = PaymentEvent(
            platform=k.platform,
            event_id=k.refund_id or refund_key,
            kind=EventKind.REFUNDED,
            order_id=k.order_id,
            amount=total,
            refund_id=k.refund_id,
            refund_amount=total,
        )
        payload = {
            "event": event.model_dump(mode="json"),
            "red_reason": RedReason.WRONG_INVOICE.value,
            "retitle_of": blue.order_key,
        }
        created = self.ledger.create_order(
            refund_key, blue.store_id, kind="refunded", status="received", payload=payload, outbox=True
        )
        if created is None or (isinstance(created, OrderRecord) and created.status is OrderStatus.RECEIVED):
            self.queue.send(refund_key, "refunded")
            self.ledger.mark_queued(refund_key)

    # --- 2. the red is issued ---------------------------------------------------------------------
    def red_issued(self, refund_key: str) -> None:
        """The red flow's listener: a 换开 reversal issued → the new blue (other refunds: nothing)."""
        if is_retitle_refund(refund_key):
            self.resume(str(parse_order_key(refund_key).blue))

    def resume(self, blue_key: str) -> RetitleResult:
        """Continue a 换开 from wherever it stands (idempotent)."""
        blue = self.ledger.get_order(blue_key)
        if blue is None or blue.status not in (OrderStatus.REISSUING, OrderStatus.REISSUED):
            return RetitleResult(Step.REFUSED, blue_key, detail="no 换开 under way")
        refund_key = blue.text("retitle_refund_key") or ""
        new_key = blue.text("reissue_key") or ""
        refund = self.ledger.get_order(refund_key)
        if refund is None or refund.status is OrderStatus.RECEIVED:
            self._start_red(blue, refund_key)
            return RetitleResult(Step.REVERSING, blue_key, refund_key, new_key)
        if refund.status is not OrderStatus.RED_ISSUED:
            return RetitleResult(Step.REVERSING, blue_key, refund_key, new_key, detail=refund.status.value)
        self._new_blue(blue, new_key, refund.text("invoice_number") or "")
        if blue.status is OrderStatus.REISSUING:
            self.ledger.transition(
                blue_key, OrderEvent.REISSUE, now=self.clock(), fields={"reversed_by": refund.text("invoice_number")}
            )
        return RetitleResult(Step.REISSUED, blue_key, refund_key, new_key)

    def _new_blue(self, blue: OrderRecord, new_key: str, red_number: str) -> None:
        change = json.loads(blue.text("title_change") or "{}")
        old = InvoiceOrder.model_validate(blue.payload["order"])
        kind = BuyerType(change.get("type") or BuyerType.COMPANY.value)
        buyer = old.buyer.model_copy(
            update={"name": change["title"], "tax_id": change.get("tax_id") or None, "type": kind}
        )
        order = old.model_copy(update={"order_key": new_key, "buyer": buyer})
        payload = {
            "event": blue.payload.get("event") or {},
            "order": order.model_dump(mode="json"),
            "reissue_of": blue.order_key,
            "reissue_of_number": blue.text("invoice_number"),
            "reversed_by": red_number,
        }
        created = self.ledger.create_order(
            new_key, blue.store_id, kind="paid", status="received", payload=payload, outbox=True
        )
        if created is None or (isinstance(created, OrderRecord) and created.status is OrderStatus.RECEIVED):
            self.queue.send(new_key, "paid")
            self.ledger.mark_queued(new_key)
            self.log.info("换开: new blue queued", extra={"order_key": new_key, "reissue_of": blue.order_key})


def _round(key: str) -> int:
    """Which 换开 a key is (0 for the original order's)."""
    order_id = parse_order_key(key).order_id
    mark = f":{REISSUE_MARK}:"
    return int(order_id.rsplit(mark, 1)[1]) if mark in order_id else 0
