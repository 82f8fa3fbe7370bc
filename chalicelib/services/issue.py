"""Issue the blue invoice of an order, exactly once, without ever sleeping; record what the platform said.

Ports only (``chalicelib.services.ports``): no boto3, no adapter. The lifecycle is the table of
``chalicelib.domain.order_state``; this service chooses the event, the ledger executes it. The
argument, in short (``docs/issuing.md`` has it whole):

1. **One serial per order for ever** (``serial_for``), written once on the record: the platform's
   duplicate check makes a second invoice impossible whatever is resent.
2. **One attempt at a time**: the claim is a conditional write (claimable status, no live lease); it
   returns the record as it was, so no read precedes it. Every later write is fenced on the claim id.
3. **Query before re-issuing** whenever a request may have been acted on: the record was left in
   ``issuing`` (a dead attempt), ``ambiguous`` or ``accepted``. "May have been acted on" is decided by
   the exchange, which marks the moment a request leaves: a failure before that (token fetch, build)
   is a plain retry.
4. **The configuration is pinned**: provider, endpoint and seller of the attempt that may have sent
   are on the record; if they differ now while the outcome is unknown, the order is ``blocked`` and an
   operator is alerted — a query on another platform proves nothing.
5. **No sleeping**: an accepted request is checked later, by one delayed check message per store
   and batch (one query for all its serials) at the platform's typical delay; while waiting, the
   claim's lease covers the order. A still-pending order is re-checked on the retry schedule.

Every "try again later" returns ``retry_in`` (seconds, from the retry schedule and the record's
counters); the worker hides the message that long. After the schedule's horizon (≥ 24 h) the order
is handed to an operator (alert) and its message to the dead-letter queue.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from chalicelib.domain.errors import (
    AmbiguousTaxError,
    AuthTaxError,
    DuplicateTaxError,
    EInvoiceError,
    NotFound,
    PermanentTaxError,
    RetryableTaxError,
    TaxError,
)
from chalicelib.domain.models import InvoiceOrder, Store
from chalicelib.domain.order_keys import serial_for, store_of
from chalicelib.domain.order_state import QUERY_FIRST, OrderEvent, OrderStatus
from chalicelib.domain.retry import RetrySchedule
from chalicelib.domain.taxpayer import mask
from chalicelib.services.archive import record_intake
from chalicelib.services.exchange import Exchange, Sent, Session
from chalicelib.services.outcomes import Outcome, PendingCheck
from chalicelib.services.ports import (
    AlertPort,
    CredentialsPort,
    MetricsPort,
    OrderLedger,
    OrderRecord,
    ProviderPort,
    StorePort,
)
from chalicelib.services.red_ports import RefundAttempts
from chalicelib.services.settle import Settler
from chalicelib.taxapi.base import InvoiceResult, InvoiceStatus

if TYPE_CHECKING:
    from chalicelib.services.dashboard import InvoiceCounterPort

#: The lease outlives the invocation by this much, plus the first check's delay.
LEASE_MARGIN_SECONDS = 30


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _claim_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Attempt:
    """One claimed attempt of one order."""

    order_key: str
    claim_id: str
    serial: str
    record: OrderRecord
    store: Store
    pin: str
    lease_until: float
    #: Whether a request of an earlier attempt may have been acted on and is not yet resolved.
    unknown: bool
    sent: Sent = field(default_factory=Sent)
    session: Session | None = None

    @property
    def keys(self) -> dict[str, str]:
        return {"order_key": self.order_key, "serial": self.serial}

    @property
    def retries(self) -> int:
        return self.record.number("retries")


class IssueInvoice:
    """``attempt(order_key, kind, deadline)`` runs one attempt; ``check(...)`` one batched check."""

    def __init__(
        self,
        *,
        ledger: OrderLedger,
        stores: StorePort,
        credentials: CredentialsPort,
        providers: ProviderPort,
        exchange: Exchange,
        alerts: AlertPort,
        metrics: MetricsPort,
        logger: Logger,
        schedule: RetrySchedule,
        first_check_seconds: Callable[[Store], int],
        clock: Callable[[], datetime] = _utcnow,
        claim_ids: Callable[[], str] = _claim_id,
        red: RefundAttempts | None = None,
        counters: InvoiceCounterPort | None = None,
    ) -> None:
        self.red = red  # the red flow (chalicelib/services/red.py); None: refunds are parked
        self.ledger = ledger
        self.stores = stores
        self.credentials = credentials
        self.providers = providers
        self.exchange = exchange
        self.log = logger
        self.schedule = schedule
        self.first_check_seconds = first_check_seconds
        self.clock = clock
        self.claim_ids = claim_ids
        self.settle = Settler(
            ledger=ledger,
            alerts=alerts,
            metrics=metrics,
            logger=logger,
            schedule=schedule,
            clock=clock,
            counters=counters,  # the dashboard's (chalicelib/services/dashboard.py); None: not counted
        )

    # --- entry ------------------------------------------------------------------------------------
    def attempt(self, order_key: str, kind: str, *, deadline: float) -> Outcome:
        """One attempt for one order message. ``deadline``: epoch seconds the invocation ends at."""
        now = self.clock().timestamp()
        if kind == "refunded":
            if self.red is not None:
                return self.red.attempt(order_key, deadline=deadline)
            return self._park_refund(order_key, now)
        store = self.stores.get(store_of(order_key))
        pin = self.providers.pin(store)
        claim_id = self.claim_ids()
        lease_until = max(deadline, now) + self.first_check_seconds(store) + LEASE_MARGIN_SECONDS
        claimed = self.ledger.transition(
            order_key,
            OrderEvent.CLAIM,
            now=now,
            claim_id=claim_id,
            lease_until=lease_until,
            due_at=lease_until,
            keep={"serial": serial_for(order_key), "pin": pin},
            add={"claims": 1},
        )
        before = claimed.before
        if before is None:
            raise NotFound(f"no order record {order_key}")
        if not claimed.ok:
            return self._not_claimed(order_key, before, now)
        record_intake(self.exchange.recorder, before)  # the intake's steps, into this invocation's archive
        a = Attempt(
            order_key=order_key,
            claim_id=claim_id,
            serial=before.text("serial") or serial_for(order_key),
            record=before,
            store=store,
            pin=pin,
            lease_until=lease_until,
            unknown=before.status in QUERY_FIRST,
        )
        self.log.info(
            "order claimed",
            extra={
                **a.keys,
                "prior_status": before.status.value,
                "query_first": a.unknown,
                "claims": before.number("claims") + 1,
            },
        )
        return self._run(a)

    def _not_claimed(self, order_key: str, before: OrderRecord, now: float) -> Outcome:
        if before.status is OrderStatus.ISSUING:  # a live lease: another attempt (or a check) owns it
            self.settle.metric("LeaseHeld")
            # The ledger holds a lease live while lease_until >= int(now): come back after that second.
            wait = max(1, math.ceil(before.number("lease_until") + 1 - now))
            self.log.info("order leased by another attempt", extra={"order_key": order_key, "retry_in": wait})
            return Outcome(order_key, OrderStatus.ISSUING, retry_in=wait, detail="lease held")
        self.log.info("order needs nothing", extra={"order_key": order_key, "status": before.status.value})
        return Outcome(order_key, before.status, detail="nothing to do")

    # --- one claimed attempt, with the error taxonomy -----------------------------------------------
    def _run(self, a: Attempt) -> Outcome:
        try:
            blocked = self._check_pin(a)
            if blocked is not None:
                return blocked
            a.session = self._session(a.store)
            order = InvoiceOrder.model_validate(a.record.payload["order"])
            if a.unknown:
                found = self.exchange.query(a.session, (a.serial,), self.clock(), a.keys).get(a.serial)
                a.unknown = False  # the platform answered
                if found is not None:
                    return self._found(a, found)
                self.log.info("query first: nothing under this serial, issuing", extra=a.keys)
            return self._issue(a, order)
        except AuthTaxError as exc:
            return self.settle.auth_failed(a, exc)
        except AmbiguousTaxError as exc:
            a.unknown = a.unknown or a.sent.may_have_left
            return self.settle.release(a, exc)
        except PermanentTaxError as exc:
            if a.sent.may_have_left:
                # The platform refused our create request (providers map only documented refusal
                # codes to Permanent; an unknown reply is Ambiguous). Queries never get here.
                return self.settle.failed(a, exc)
            return self.settle.release(a, exc)  # refused while building: nothing left, retry
        except RetryableTaxError as exc:
            return self.settle.release(a, exc)
        except EInvoiceError as exc:  # configuration, unknown store, ledger unavailable: retry
            return self.settle.release(a, exc)
        except Exception as exc:  # a bug: retried on the schedule, visible on the record and in logs
            self.log.exception("unexpected error in an attempt", extra=a.keys)
            return self.settle.release(a, exc)

    def _check_pin(self, a: Attempt) -> Outcome | None:
        old = a.record.text("pin")
        if old is None or old == a.pin:
            return None
        if a.unknown:
            return self.settle.blocked(a, old)
        # Nothing can be on the old platform: pin the new configuration before anything is sent.
        self.ledger.touch(a.order_key, a.claim_id, fields={"pin": a.pin})
        self.log.info("configuration changed before anything was sent: re-pinned", extra=a.keys)
        return None

    def _session(self, store: Store) -> Session:
        credentials = self.credentials.load(store)
        return Session(store, credentials, self.providers.get(store, credentials))

    def _issue(self, a: Attempt, order: InvoiceOrder) -> Outcome:
        assert a.session is not None
        self.log.info(
            "issuing",
            extra={
                **a.keys,
                "provider": a.session.name,
                "total": str(order.total),
                "lines": len(order.lines),
                "buyer_tax_id": mask(order.buyer.tax_id),
                "invoice_type": order.invoice_type.value,
            },
        )
        try:
            accepted = self.exchange.issue(a.session, order, a.serial, self.clock(), sent=a.sent, keys=a.keys)
        except DuplicateTaxError:
            self.settle.metric("TaxDuplicate")
            self.log.info("duplicate serial: fetching the existing invoice", extra=a.keys)
            a.unknown = True
            found = self.exchange.query(a.session, (a.serial,), self.clock(), a.keys).get(a.serial)
            if found is None:
                raise AmbiguousTaxError("the platform reports a duplicate, but a query finds nothing yet") from None
            return self._found(a, found)
        except (RetryableTaxError, AuthTaxError):
            # The platform said it did not take it (busy, 5xx, not sent, or refused our credentials).
            a.sent.may_have_left = False
            raise
        a.sent.may_have_left = True
        return self._accepted(a, accepted.provider_ref)

    def _found(self, a: Attempt, result: InvoiceResult) -> Outcome:
        if result.status is InvoiceStatus.PENDING:
            return self._accepted(a, a.record.text("provider_ref"))
        return self.settle.result(a.order_key, a.claim_id, result, sent=a.sent.issue_requests, keys=a.keys)

    def _accepted(self, a: Attempt, provider_ref: str | None) -> Outcome:
        """Accepted, result not known yet: checked later under the lease we hold (no write now)."""
        if a.record.status is OrderStatus.ACCEPTED or a.record.number("checks") > 0:
            # Already waited once: this attempt is a re-check on the retry schedule.
            return self.settle.wait(a, provider_ref)
        assert a.session is not None
        pending = PendingCheck(
            order_key=a.order_key,
            claim_id=a.claim_id,
            serial=a.serial,
            store_id=a.store.store_id,
            pin=a.pin,
            sends=a.sent.issue_requests,
            provider_ref=provider_ref or "",
        )
        return Outcome(a.order_key, OrderStatus.ACCEPTED, check=pending, detail="check scheduled")

    # --- the batched check -------------------------------------------------------------------------
    def check(self, store_id: str, pin: str, entries: list[PendingCheck], *, round_no: int) -> Outcome:
        """Look up every entry's result with one query; ``retry_in`` when the query itself failed."""
        store = self.stores.get(store_id)
        if self.providers.pin(store) != pin:
            # The store's configuration changed since the requests left: a query here proves
            # nothing. Hand each order to a normal attempt, which blocks it for an operator.
            moved = [
                self.settle.wait_entry(e, reason="configuration changed while waiting for the result") for e in entries
            ]
            return Outcome(
                store_id, OrderStatus.ACCEPTED, requeue=tuple(m for m in moved if m), detail="configuration changed"
            )
        keys = {"store_id": store_id, "op_round": str(round_no)}
        try:
            session = self._session(store)
            results = self.exchange.query(session, tuple(e.serial for e in entries), self.clock(), keys)
        except (TaxError, EInvoiceError) as exc:
            # Each order goes on alone, on its own schedule (its record's counters), rather than the
            # check message retrying for orders whose leases expire meanwhile anyway.
            self.log.warning("batched check failed", extra={**keys, "error": getattr(exc, "code", "error")})
            reason = f"check failed: {getattr(exc, 'code', type(exc).__name__)}"
            moved = [self.settle.wait_entry(e, reason=reason) for e in entries]
            return Outcome(store_id, OrderStatus.ACCEPTED, requeue=tuple(m for m in moved if m), detail=reason)
        requeue: list[tuple[str, int]] = []
        for entry in entries:
            found = results.get(entry.serial)
            later: tuple[str, int] | None = None
            if found is None:
                later = self.settle.unknown_entry(entry)
            elif found.status is InvoiceStatus.PENDING:
                later = self.settle.wait_entry(entry, reason="still issuing")
            else:
                keys = {"order_key": entry.order_key, "serial": entry.serial}
                self.settle.result(entry.order_key, entry.claim_id, found, sent=entry.sends, keys=keys)
            if later is not None:
                requeue.append(later)
        return Outcome(store_id, OrderStatus.ISSUED, requeue=tuple(requeue), detail=f"checked {len(entries)}")

    # --- refunds ----------------------------------------------------------------------------------
    def _park_refund(self, order_key: str, now: float) -> Outcome:
        moved = self.ledger.transition(order_key, OrderEvent.PARK_REFUND, now=now)
        if moved.ok:
            self.settle.metric("RefundPending")
            self.log.warning(
                "refund recorded as refund_pending: this worker has no red flow", extra={"order_key": order_key}
            )
            return Outcome(order_key, OrderStatus.REFUND_PENDING)
        status = moved.before.status if moved.before is not None else OrderStatus.RECEIVED
        return Outcome(order_key, status, detail="nothing to do")
