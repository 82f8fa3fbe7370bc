"""Where an attempt ends: the ledger transition it chooses, when it is looked at again, who is told.

Each method picks one event of ``chalicelib.domain.order_state`` and asks the ledger to execute it
(fenced on the claim id); none of them decides what may follow what. Timing comes from the retry
schedule and the record's counters (``retries`` for failures, ``checks`` for waits), never from
SQS's receive count; ``due_at`` (the sweeper's backstop) is the next look plus a grace period.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from chalicelib.config import SWEEP_GRACE_SECONDS
from chalicelib.domain.delivery import DELIVERY_DUE_SECONDS
from chalicelib.domain.errors import AuthTaxError, EInvoiceError, PermanentTaxError, TaxError
from chalicelib.domain.order_state import OrderEvent, OrderStatus, target
from chalicelib.domain.retry import RetrySchedule
from chalicelib.services.outcomes import Outcome, PendingCheck
from chalicelib.services.ports import AlertPort, FieldValue, MetricsPort, OrderLedger
from chalicelib.taxapi.base import InvoiceResult, InvoiceStatus

if TYPE_CHECKING:
    from chalicelib.services.dashboard import InvoiceCounterPort
    from chalicelib.services.issue import Attempt

#: The sweeper looks at a record this long after its next step should have happened (one setting, in config).
GRACE_SECONDS = SWEEP_GRACE_SECONDS


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_text(exc: BaseException) -> str:
    code = exc.code if isinstance(exc, EInvoiceError) else type(exc).__name__
    provider_code = exc.provider_code if isinstance(exc, TaxError) else None
    return _short(f"{code}" + (f" {provider_code}" if provider_code else ""), 120)


class Settler:
    def __init__(
        self,
        *,
        ledger: OrderLedger,
        alerts: AlertPort,
        metrics: MetricsPort,
        logger: Logger,
        schedule: RetrySchedule,
        clock: Callable[[], datetime],
        grace_seconds: int = GRACE_SECONDS,
        counters: InvoiceCounterPort | None = None,
    ) -> None:
        self.ledger = ledger
        #: The dashboard's counters (chalicelib/services/dashboard.py): one ADD per outcome; never raises.
        self.counters = counters
        self.alerts = alerts
        self.metrics = metrics
        self.log = logger
        self.schedule = schedule
        self.clock = clock
        self.grace = grace_seconds
        self.horizon_attempts = schedule.attempts_within(schedule.horizon)
        #: Orders issued since the worker last drained them: it queues their delivery (one batch call).
        self.issued_keys: list[str] = []

    # --- results ----------------------------------------------------------------------------------
    def result(
        self, order_key: str, claim_id: str, result: InvoiceResult, *, sent: int, keys: dict[str, str]
    ) -> Outcome:
        """The platform's final word on a serial: issued, or failed / voided (an operator's)."""
        now = self.clock()
        add = {"sends": sent} if sent else None
        if result.status is InvoiceStatus.ISSUED:
            issued_at = result.issued_at or now
            fields: dict[str, FieldValue] = {
                "invoice_number": result.invoice_number,
                "issued_at": issued_at.isoformat(),
                "pdf_url": result.pdf_url,
                "ofd_url": result.ofd_url,
                "xml_url": result.xml_url,
                "provider_status": result.provider_status,
                "total_amount": str(result.total_amount) if result.total_amount is not None else None,
                "total_tax": str(result.total_tax) if result.total_tax is not None else None,
                "last_error": None,
            }
            # due until its first delivery run: a lost delivery message is sent again by the sweeper
            written = self.ledger.transition(
                order_key,
                OrderEvent.ISSUED,
                now=now.timestamp(),
                claim_id=claim_id,
                fields=fields,
                add=add,
                due_at=now.timestamp() + DELIVERY_DUE_SECONDS,
            )
            if not written.ok:
                return self._lost(order_key, "issued")
            self.metric("InvoiceIssued")
            self.issued_keys.append(order_key)
            if self.counters is not None:
                total = None if result.total_amount is None else result.total_amount + (result.total_tax or 0)
                self.counters.issued(written.before, order_key, issued_at, total)
            self.log.info("invoice issued", extra={**keys, "invoice_number": result.invoice_number})
            return Outcome(order_key, OrderStatus.ISSUED, invoice_number=result.invoice_number)
        reason = result.failure_reason or f"the platform reports {result.status.value}"
        error = PermanentTaxError(reason, provider_code=result.provider_status, code=f"invoice_{result.status.value}")
        return self._fail(order_key, claim_id, error, add=add, keys=keys)

    def failed(self, a: Attempt, exc: PermanentTaxError) -> Outcome:
        return self._fail(a.order_key, a.claim_id, exc, add={"sends": a.sent.issue_requests}, keys=a.keys)

    def _fail(
        self, order_key: str, claim_id: str, exc: PermanentTaxError, *, add: dict[str, int] | None, keys: dict[str, str]
    ) -> Outcome:
        written = self.ledger.transition(
            order_key,
            OrderEvent.FAIL,
            now=self.clock().timestamp(),
            claim_id=claim_id,
            fields={
                "failure_code": exc.provider_code or exc.code,
                "failure_field": exc.field,
                "failure_reason": _short(exc.message),
            },
            add=add or None,
        )
        if not written.ok:
            return self._lost(order_key, "failed")
        self.metric("InvoiceFailed")
        if self.counters is not None:
            self.counters.exception("failed", order_key, self.clock())
        self.log.warning(
            "invoice failed", extra={**keys, "code": exc.code, "provider_code": exc.provider_code, "field": exc.field}
        )
        return Outcome(order_key, OrderStatus.FAILED, detail=exc.provider_code or exc.code)

    # --- try again later ----------------------------------------------------------------------------
    def release(self, a: Attempt, exc: BaseException) -> Outcome:
        """A failure that may pass: ``retrying`` when nothing can exist on the platform, ``ambiguous``
        when a request may have been acted on, ``accepted`` when it was accepted."""
        if a.record.status is OrderStatus.ACCEPTED:
            event = OrderEvent.WAIT
        elif a.unknown or a.sent.may_have_left:
            event = OrderEvent.UNKNOWN
        else:
            event = OrderEvent.RETRY
        self.metric("TaxAmbiguous" if event is OrderEvent.UNKNOWN else "TaxRetryable")
        return self._later(a, event, error_text(exc), counter="retries")

    def wait(self, a: Attempt, provider_ref: str | None) -> Outcome:
        """Accepted and still issuing at a re-check: look again on the schedule."""
        self.metric("InvoiceDeferred")
        return self._later(a, OrderEvent.WAIT, None, counter="checks", provider_ref=provider_ref)

    def auth_failed(self, a: Attempt, exc: AuthTaxError) -> Outcome:
        """Credentials refused. ``failed_auth`` only when nothing can be on the platform: a refusal
        while a request's outcome is unknown must keep the query-first (and the pin check)."""
        self.metric("TaxAuthFailed")
        if a.record.status is OrderStatus.ACCEPTED:
            event = OrderEvent.WAIT
        elif a.unknown or a.sent.may_have_left:
            event = OrderEvent.UNKNOWN
        else:
            event = OrderEvent.AUTH_FAILED
        first = a.record.text("auth_alerted_at") is None and a.record.status is not OrderStatus.FAILED_AUTH
        outcome = self._later(
            a,
            event,
            error_text(exc),
            counter="retries",
            extra={"auth_alerted_at": self.clock().isoformat()} if first else None,
        )
        self.log.error(
            "tax platform refused our credentials",
            extra={**a.keys, "code": exc.code, "provider_code": exc.provider_code},
        )
        if first and not outcome.lost:  # one alert per order; none from an attempt that was taken over
            store = a.store
            self.alert(
                f"einvoice: tax credentials refused for store {store.store_id}",
                f"The tax platform refused the credentials of store {store.store_id} {store.name} "
                f"({exc.provider_code or exc.code}) while issuing order {a.order_key}.\n"
                f"Invoices of this store cannot be issued until the credentials in secret "
                f"{store.provider.credentials_secret} are fixed; the order is retried on the schedule "
                "and issued once they are.",
            )
        return outcome

    def blocked(self, a: Attempt, old_pin: str) -> Outcome:
        """The configuration changed while the outcome of a request is unknown: an operator decides."""
        written = self.ledger.transition(
            a.order_key,
            OrderEvent.BLOCK,
            now=self.clock().timestamp(),
            claim_id=a.claim_id,
            fields={
                "last_error": "configuration changed while the outcome of a request was unknown",
                "blocked_pin": a.pin,
            },
        )
        if not written.ok:
            return self._lost(a.order_key, "blocked")
        self.metric("OrderBlocked")
        if self.counters is not None:
            self.counters.exception("blocked", a.order_key, self.clock())
        self.log.error("configuration changed with a request outstanding: blocked", extra=a.keys)
        self.alert(
            f"einvoice: order {a.order_key} blocked (tax configuration changed)",
            f"Order {a.order_key} (serial {a.serial}) was sent under tax configuration {old_pin!r}, with "
            f"its outcome unknown, and the store now uses {a.pin!r}. Querying the new platform cannot tell "
            "whether the old one issued it, so nothing more is sent.\n"
            "Either restore the store's configuration and run `einvoice orders retry "
            f"{a.order_key}`, or check on the old platform that no invoice exists under the serial and "
            f"run `einvoice orders retry {a.order_key} --repin`.",
        )
        return Outcome(a.order_key, OrderStatus.BLOCKED, detail="configuration changed")

    def _later(
        self,
        a: Attempt,
        event: OrderEvent,
        last_error: str | None,
        *,
        counter: str,
        provider_ref: str | None = None,
        extra: dict[str, FieldValue] | None = None,
    ) -> Outcome:
        now = self.clock().timestamp()
        # The schedule counts every look at the order, failed (retries) or still pending (checks).
        n = a.record.number("retries") + a.record.number("checks") + 1
        give_up = n > self.horizon_attempts
        delay = self.schedule.delay(min(n, self.horizon_attempts))
        fields: dict[str, FieldValue] = {"last_error": last_error}
        if provider_ref:
            fields["provider_ref"] = provider_ref
        if give_up:
            fields["gave_up_at"] = self.clock().isoformat()
        fields.update(extra or {})
        add = {counter: 1, **({"sends": a.sent.issue_requests} if a.sent.issue_requests else {})}
        written = self.ledger.transition(
            a.order_key,
            event,
            now=now,
            claim_id=a.claim_id,
            due_at=None if give_up else now + delay + self.grace,
            fields=fields,
            add=add,
        )
        status = target(event)
        if not written.ok:
            return self._lost(a.order_key, status.value)
        self.log.info(
            "released", extra={**a.keys, "status": status.value, "error": last_error, counter: n, "retry_in": delay}
        )
        if give_up:
            self.metric("OrderGaveUp")
            self.alert(
                f"einvoice: order {a.order_key} still {status.value} after the retry horizon",
                f"Order {a.order_key} has been retried for {self.schedule.horizon // 3600} hours and is still "
                f"{status.value} ({last_error or 'waiting for the platform'}). Its message is in the dead-letter "
                f"queue; once the cause is fixed run `einvoice orders retry {a.order_key}`.",
            )
            return Outcome(a.order_key, status, dead_letter=True, detail="retry horizon reached")
        return Outcome(a.order_key, status, retry_in=delay, detail=last_error or "waiting")

    # --- entries of a batched check ---------------------------------------------------------------
    def wait_entry(self, entry: PendingCheck, *, reason: str) -> tuple[str, int] | None:
        """Still pending at the first check: released as ``accepted``; its next look is a message."""
        now = self.clock().timestamp()
        delay = self.schedule.delay(1)
        written = self.ledger.transition(
            entry.order_key,
            OrderEvent.WAIT,
            now=now,
            claim_id=entry.claim_id,
            due_at=now + delay + self.grace,
            fields={
                "provider_ref": entry.provider_ref or None,
                "last_error": None if reason == "still issuing" else reason,
            },
            add={"checks": 1, **({"sends": entry.sends} if entry.sends else {})},
        )
        if not written.ok:
            return None  # another attempt took it over: it queries first
        self.metric("InvoiceDeferred")
        return entry.order_key, delay

    def unknown_entry(self, entry: PendingCheck) -> tuple[str, int] | None:
        """Accepted, yet the platform knows nothing under the serial: query again before anything."""
        now = self.clock().timestamp()
        delay = self.schedule.delay(1)
        written = self.ledger.transition(
            entry.order_key,
            OrderEvent.UNKNOWN,
            now=now,
            claim_id=entry.claim_id,
            due_at=now + delay + self.grace,
            fields={"last_error": "accepted, but a query finds nothing under the serial yet"},
            add={"retries": 1, **({"sends": entry.sends} if entry.sends else {})},
        )
        return (entry.order_key, delay) if written.ok else None

    def note_issued(self, order_key: str) -> None:
        """One more record to deliver with this batch (the red flow's issued red invoices)."""
        self.issued_keys.append(order_key)

    def drain_issued(self) -> list[str]:
        """The orders issued since the last call (for delivery), forgotten here."""
        keys, self.issued_keys = self.issued_keys, []
        return keys

    # --- helpers ----------------------------------------------------------------------------------
    def _lost(self, order_key: str, what: str) -> Outcome:
        """Our claim was taken over (we were paused past the lease): the newer attempt decides."""
        self.metric("LeaseLost")
        self.log.warning("lease lost: not writing", extra={"order_key": order_key, "would_write": what})
        return Outcome(order_key, OrderStatus.ISSUING, detail="lease lost", lost=True)

    def alert(self, subject: str, message: str) -> None:
        try:
            self.alerts.publish(subject[:100], message)
        except Exception:
            self.log.exception("could not publish an alert", extra={"subject": subject[:100]})

    def metric(self, name: str) -> None:
        try:
            self.metrics.add_metric(name=name, unit="Count", value=1)
        except Exception:
            self.log.debug("metric not recorded", extra={"metric": name})
