"""Refund → red invoice, executed by the worker: one attempt per ``refunded`` message, never sleeping.

Ports only. The lifecycle is ``chalicelib.domain.order_state`` (the refund record's statuses from
``red_claim`` on); what a refund takes is ``chalicelib.domain.red_allocation``; the tax steps (form,
red invoice, query-first) are ``chalicelib.services.red_tax``. One attempt:

1. **Claim** the refund record (``red_claim``: a lease, fenced ends) — as the blue issue claims.
2. **Find the blue** (the order key without the refund part) and decide by its status:
   - none yet → ``refund_pending``, looked at again on the retry schedule until ``hold_seconds`` after
     the refund was first seen, then ``refund_unmatched`` and an alert: never dropped, never issued alone;
   - ``issuing`` / ``ambiguous`` / ``accepted`` (in flight) → ``refund_pending``, looked at again later;
   - ``received`` / ``queued`` / ``retrying`` / ``failed_auth`` (nothing sent yet) → the blue's payload is
     reduced by the refund, or the blue ``cancelled`` when nothing is left; the refund ``refund_netted``;
   - ``rejected``: a refund of everything cancels it, a partial one goes to the operator;
   - ``held`` / ``failed`` / ``blocked`` → ``refund_manual`` and an alert (an operator reverses it);
   - ``cancelled`` → nothing is left: refused as an over-refund;
   - ``issued`` → the refund is **reserved** on the blue (the conditional counter: one compare-and-set
     of the refund book), then the red flow runs: form, confirmation, red invoice (``red_tax``).
3. A refund that takes more than is left (per line or in total) → ``refund_refused`` with the
   bilingual violation on the record and an alert.

Every wait is ``retry_in`` (the worker hides the message) plus ``due_at`` (the sweeper's backstop).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib.domain.errors import NotFound, ValidationFailed
from chalicelib.domain.models import InvoiceOrder, PaymentEvent, RedReason, Store
from chalicelib.domain.order_keys import parse_order_key, store_of
from chalicelib.domain.order_state import (
    BLUE_IN_FLIGHT,
    BLUE_MANUAL,
    BLUE_REDUCIBLE,
    CANCELLABLE,
    RED_QUERY_FIRST,
    OrderEvent,
    OrderStatus,
)
from chalicelib.domain.red_allocation import RefundBook, allocate_refund, red_order, reduced_blue, refund_amount
from chalicelib.domain.retry import RetrySchedule
from chalicelib.services.exchange import Exchange
from chalicelib.services.outcomes import Outcome
from chalicelib.services.ports import (
    AlertPort,
    CredentialsPort,
    FieldValue,
    MetricsPort,
    OrderRecord,
    ProviderPort,
    StorePort,
)
from chalicelib.services.red_ports import RedLedger, RedSettings
from chalicelib.services.red_settle import RedAttempt, RedSettler
from chalicelib.services.red_tax import RedTax

#: The lease outlives the invocation by this much (as the blue's).
LEASE_MARGIN_SECONDS = 30
#: Compare-and-set tries on the blue record's refund book before the attempt is retried later.
BOOK_TRIES = 5
#: Blue records a refund reserves on: issued, or being replaced by 换开 (its own full reversal).
_ISSUED_ONLY = frozenset({OrderStatus.ISSUED, OrderStatus.REISSUING})


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _claim_id() -> str:
    return uuid.uuid4().hex


def _reason(record: OrderRecord) -> RedReason:
    """The red reason a refund record names (``payload["red_reason"]``: 换开 says 01 开票有误), else 02 销货退回."""
    raw = record.payload.get("red_reason")
    return RedReason(raw) if raw in {r.value for r in RedReason} else RedReason.RETURN


class RedFlow:
    """``attempt(refund_key, deadline=…)``: one attempt of the red flow for one refund record."""

    def __init__(
        self,
        *,
        ledger: RedLedger,
        stores: StorePort,
        credentials: CredentialsPort,
        providers: ProviderPort,
        exchange: Exchange,
        alerts: AlertPort,
        metrics: MetricsPort,
        logger: Logger,
        schedule: RetrySchedule,
        first_check_seconds: Callable[[Store], int],
        settings: RedSettings | None = None,
        clock: Callable[[], datetime] = _utcnow,
        claim_ids: Callable[[], str] = _claim_id,
    ) -> None:
        self.ledger = ledger
        self.stores = stores
        self.providers = providers
        self.log = logger
        self.schedule = schedule
        self.first_check_seconds = first_check_seconds
        self.settings = settings or RedSettings()
        self.clock = clock
        self.claim_ids = claim_ids
        self.settle = RedSettler(
            ledger=ledger, alerts=alerts, metrics=metrics, logger=logger, schedule=schedule, clock=clock
        )
        self.tax = RedTax(
            settle=self.settle,
            credentials=credentials,
            providers=providers,
            exchange=exchange,
            settings=self.settings,
            first_check_seconds=first_check_seconds,
            clock=clock,
        )

    # --- entry ------------------------------------------------------------------------------------
    def attempt(self, refund_key: str, *, deadline: float) -> Outcome:
        now = self.clock().timestamp()
        store = self.stores.get(store_of(refund_key))
        pin = self.providers.pin(store)
        claim_id = self.claim_ids()
        lease_until = max(deadline, now) + self.first_check_seconds(store) + LEASE_MARGIN_SECONDS
        claimed = self.ledger.transition(
            refund_key,
            OrderEvent.RED_CLAIM,
            now=now,
            claim_id=claim_id,
            lease_until=lease_until,
            due_at=lease_until,
            keep={"pin": pin, "first_seen_at": str(int(now))},
            add={"claims": 1},
        )
        before = claimed.before
        if before is None:
            raise NotFound(f"no refund record {refund_key}")
        if not claimed.ok:
            if before.status is OrderStatus.RED_ISSUING:
                wait = max(1, math.ceil(before.number("lease_until") + 1 - now))
                return Outcome(refund_key, before.status, retry_in=wait, detail="lease held")
            return Outcome(refund_key, before.status, detail="nothing to do")
        a = RedAttempt(
            key=refund_key,
            claim_id=claim_id,
            record=before,
            store=store,
            pin=pin,
            unknown=before.status in RED_QUERY_FIRST,
        )
        self.log.info(
            "refund claimed", extra={"order_key": refund_key, "prior_status": before.status.value, "step": a.step}
        )
        try:
            if a.step != "match":  # reserved on the blue already: the tax steps go on
                return self._reserved(a)
            return self._match(a)
        except Exception as exc:  # a bug, or the ledger / store unavailable: retried on the schedule
            self.log.exception("unexpected error in a red attempt", extra={"order_key": refund_key})
            return self.settle.release(a, exc)

    # --- the blue decides ---------------------------------------------------------------------------
    def _match(self, a: RedAttempt) -> Outcome:
        blue_key = str(parse_order_key(a.key).blue)
        for _ in range(BOOK_TRIES):
            blue = self.ledger.get_order(blue_key)
            if blue is None:
                return self._no_blue(a)
            status = blue.status
            if status in BLUE_IN_FLIGHT:
                return self.settle.wait_blue(a, f"the blue invoice is {status.value}: waiting for its outcome")
            if status in BLUE_MANUAL:
                return self.settle.manual(a, blue_key, f"the blue order is {status.value}: reverse it by hand")
            event = PaymentEvent.model_validate(a.record.payload["event"])
            book = RefundBook.of(blue.fields)
            if status in _ISSUED_ONLY:
                done = self._reserve(a, blue, book, event)
            elif status in BLUE_REDUCIBLE or status in (OrderStatus.REJECTED, OrderStatus.CANCELLED):
                done = self._net(a, blue, book, event)
            else:  # a status the red flow does not know (a bug): an operator looks
                return self.settle.manual(a, blue_key, f"the blue order is {status.value}")
            if done is not None:
                return done
            # the book moved under us (another refund of the order): read again
        return self.settle.release(a, RuntimeError("the blue record's refund book kept changing"))

    def _no_blue(self, a: RedAttempt) -> Outcome:
        # an operator's retry starts the hold again
        seen = max(int(a.record.text(f) or 0) for f in ("first_seen_at", "operator_retry_at")) or int(
            self.clock().timestamp()
        )
        waited = self.clock().timestamp() - seen
        if waited >= self.settings.hold_seconds:
            return self.settle.unmatched(a, waited)
        return self.settle.wait_blue(
            a, "no order record for this refund yet", limit=self.settings.hold_seconds - waited
        )

    def _amount(self, a: RedAttempt, book: RefundBook, event: PaymentEvent) -> Decimal:
        return refund_amount(event, book, a.key)

    def _reserve(self, a: RedAttempt, blue: OrderRecord, book: RefundBook, event: PaymentEvent) -> Outcome | None:
        """Record what this refund takes on the issued blue (once), then the tax steps."""
        order = InvoiceOrder.model_validate(blue.payload["order"])
        if a.key in book.netted:  # netted before issue by an attempt that ended before its last write
            amount = sum(book.netted[a.key].values(), Decimal(0))
            return self.settle.netted(a, blue.order_key, amount, "refund netted into the blue before issue")
        if a.key not in book.entries:
            amount = self._amount(a, book, event)
            if amount <= 0:
                return self.settle.netted(
                    a, blue.order_key, Decimal(0), "nothing left to reverse: a later refund notify covered it"
                )
            try:
                shares = allocate_refund(order, book, a.key, amount, event.lines)
            except ValidationFailed as exc:
                return self.settle.refused(a, blue.order_key, exc)
            fresh = book.with_entry(a.key, shares)
            fields: dict[str, FieldValue] = dict(fresh.fields())
            if not self.ledger.revise(
                blue.order_key,
                revision=book.revision,
                statuses=_ISSUED_ONLY,
                now=self.clock().timestamp(),
                fields=fields,
            ).ok:
                return None
            book = fresh
            self.log.info(
                "refund reserved on the blue invoice",
                extra={
                    "order_key": a.key,
                    "blue": blue.order_key,
                    "refund": str(amount),
                    "refunded_total": fields["refunded_total"],
                },
            )
        a.red = self._red(order, blue, book, a.key, _reason(a.record))
        a.blue_key = blue.order_key
        return self.tax.run(a)

    def _reserved(self, a: RedAttempt) -> Outcome:
        blue_key = a.record.text("blue_key") or str(parse_order_key(a.key).blue)
        blue = self.ledger.get_order(blue_key)
        if blue is None:
            raise NotFound(f"the blue record {blue_key} of a reserved refund is gone")
        book = RefundBook.of(blue.fields)
        if a.key not in book.entries:  # cannot happen: reserved before any tax step
            return self._match(a)
        a.red = self._red(InvoiceOrder.model_validate(blue.payload["order"]), blue, book, a.key, _reason(a.record))
        a.blue_key = blue_key
        return self.tax.run(a)

    @staticmethod
    def _red(
        order: InvoiceOrder, blue: OrderRecord, book: RefundBook, key: str, reason: RedReason = RedReason.RETURN
    ) -> InvoiceOrder:
        red = red_order(order, key, book.entries[key], reason=reason)
        issued_at = blue.text("issued_at")
        return red.model_copy(
            update={
                "original_invoice_number": blue.text("invoice_number"),
                "original_issued_at": datetime.fromisoformat(issued_at) if issued_at else None,
            }
        )

    def _net(self, a: RedAttempt, blue: OrderRecord, book: RefundBook, event: PaymentEvent) -> Outcome | None:
        """A refund before the blue was issued: reduce the blue's payload, or cancel it (see the module)."""
        if a.key in book.netted:  # recorded by an attempt that ended before its last write
            amount = sum(book.netted[a.key].values(), Decimal(0))
            if blue.status in CANCELLABLE and self._nothing_left(blue, book):
                self._cancel(blue.order_key)
            return self.settle.netted(a, blue.order_key, amount, "refund netted into the blue before issue")
        amount = self._amount(a, book, event)
        if amount <= 0:
            return self.settle.netted(
                a, blue.order_key, Decimal(0), "nothing left to reverse: a later notify covered it"
            )
        if blue.status is OrderStatus.CANCELLED:
            return self.settle.refused(a, blue.order_key, None, reason="the order was cancelled by an earlier refund")
        payload: dict[str, Any] = blue.payload
        source = payload.get("original_order") or payload.get("order")
        if source is None:  # a rejected order: no invoice was built from it
            paid = Decimal(str((payload.get("event") or {}).get("amount", "0")))
            if blue.status is OrderStatus.REJECTED and amount >= paid > 0:
                self._cancel(blue.order_key)
                return self.settle.netted(a, blue.order_key, amount, "rejected order refunded in full: cancelled")
            return self.settle.manual(a, blue.order_key, "the blue order is rejected: correct it net of the refund")
        original = InvoiceOrder.model_validate(source)
        try:
            shares = allocate_refund(original, book, a.key, amount, event.lines, netted=True)
        except ValidationFailed as exc:
            return self.settle.refused(a, blue.order_key, exc)
        fresh = book.with_entry(a.key, shares, netted=True)
        reduced = reduced_blue(original, fresh.by_line(netted=True))
        if reduced is not None and blue.status is OrderStatus.REJECTED:
            return self.settle.manual(a, blue.order_key, "the blue order is rejected: correct it net of the refund")
        new_payload = {**payload, "original_order": original.model_dump(mode="json")}
        if reduced is not None:
            new_payload["order"] = reduced.model_dump(mode="json")
        written = self.ledger.revise(
            blue.order_key,
            revision=book.revision,
            statuses=CANCELLABLE,
            now=self.clock().timestamp(),
            fields=dict(fresh.fields()),
            payload=new_payload,
        )
        if not written.ok:
            return None
        if reduced is None:
            self._cancel(blue.order_key)
        self.log.info(
            "refund netted into the blue before issue",
            extra={"order_key": a.key, "blue": blue.order_key, "refund": str(amount), "cancelled": reduced is None},
        )
        detail = "blue cancelled: refunded in full before issue" if reduced is None else "blue reduced before issue"
        return self.settle.netted(a, blue.order_key, amount, detail)

    @staticmethod
    def _nothing_left(blue: OrderRecord, book: RefundBook) -> bool:
        source = blue.payload.get("original_order") or blue.payload.get("order")
        lines = book.by_line(netted=True)
        return source is not None and reduced_blue(InvoiceOrder.model_validate(source), lines) is None

    def _cancel(self, blue_key: str) -> None:
        self.ledger.transition(
            blue_key,
            OrderEvent.CANCEL,
            now=self.clock().timestamp(),
            fields={"last_error": "refunded in full before issue"},
        )
