"""The red flow's ends: every ledger write of a red attempt, when it is looked at again, who is told.

Each method picks one event of ``chalicelib.domain.order_state`` (fenced on the claim id) and asks the
ledger to execute it, as ``chalicelib/services/settle.py`` does for the blue; timing comes from the retry
schedule and the record's counters (``retries`` for failures, ``checks`` for waits).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from aws_lambda_powertools import Logger

from chalicelib.config import SWEEP_GRACE_SECONDS
from chalicelib.domain.delivery import DELIVERY_DUE_SECONDS
from chalicelib.domain.errors import PermanentTaxError, ValidationFailed
from chalicelib.domain.models import InvoiceOrder, Store
from chalicelib.domain.order_keys import red_form_serial
from chalicelib.domain.order_state import OrderEvent, OrderStatus, target
from chalicelib.domain.retry import RetrySchedule
from chalicelib.services.exchange import Sent, Session
from chalicelib.services.outcomes import Outcome
from chalicelib.services.ports import AlertPort, FieldValue, MetricsPort, OrderRecord
from chalicelib.services.red_ports import RedLedger
from chalicelib.services.settle import error_text


@dataclass
class RedAttempt:
    """One claimed attempt of one refund record."""

    key: str
    claim_id: str
    record: OrderRecord
    store: Store
    pin: str
    unknown: bool
    red: InvoiceOrder | None = None
    blue_key: str = ""
    sent: Sent = field(default_factory=Sent)
    session: Session | None = None
    form_id: str | None = None
    form_state: str | None = None
    applied_at: float | None = None

    def __post_init__(self) -> None:
        self.step = self.record.text("red_step") or "match"
        stored = self.record.text("form_round")  # text, as every worker attribute but the counters
        self.stored_round = int(stored) if stored else 0
        self.round = self.stored_round or 1
        self.form_id = self.record.text("form_id")
        self.form_state = self.record.text("form_state")
        applied = self.record.text("form_applied_at")
        self.applied_at = float(applied) if applied else None

    @property
    def serial(self) -> str:
        return red_form_serial(self.key, self.round)

    @property
    def keys(self) -> dict[str, str]:
        return {"order_key": self.key, "serial": self.serial}

    def carried(self) -> dict[str, FieldValue]:
        """What the next attempt must know, written with every end."""
        red_total = str(-self.red.total) if self.red is not None else None
        return {
            "red_step": self.step,
            "form_round": str(self.round),
            "form_id": self.form_id,
            "form_state": self.form_state,
            "form_applied_at": str(int(self.applied_at)) if self.applied_at is not None else None,
            "blue_key": self.blue_key or None,
            "serial": self.serial if self.step != "match" else None,
            "red_total": red_total,
        }


class RedSettler:
    def __init__(
        self,
        *,
        ledger: RedLedger,
        alerts: AlertPort,
        metrics: MetricsPort,
        logger: Logger,
        schedule: RetrySchedule,
        clock: Callable[[], datetime],
        grace_seconds: int = SWEEP_GRACE_SECONDS,
    ) -> None:
        self.ledger = ledger
        self.alerts = alerts
        self.metrics = metrics
        self.log = logger
        self.schedule = schedule
        self.clock = clock
        self.grace = grace_seconds
        self.horizon_attempts = schedule.attempts_within(schedule.horizon)
        #: Called with a refund key once its red invoice is issued (wiring: its delivery, 换开's next step).
        self.on_issued: list[Callable[[str], None]] = []

    # --- ends chosen before any tax step ------------------------------------------------------------
    def wait_blue(self, a: RedAttempt, reason: str, *, limit: float | None = None) -> Outcome:
        n = a.record.number("checks") + 1
        delay = self.schedule.delay(min(n, max(1, self.horizon_attempts)))
        if limit is not None:
            delay = int(max(1, min(delay, limit + 1)))
        return self.later(a, OrderEvent.WAIT_BLUE, reason, counter="checks", delay=delay, bounded=False)

    def unmatched(self, a: RedAttempt, waited: float) -> Outcome:
        return self.end(
            a,
            OrderEvent.UNMATCHED,
            "RefundUnmatched",
            {"last_error": f"no order record for this refund after {int(waited // 3600)} h"},
            alert=f"Refund {a.key} names an order this service has no record of, after waiting "
            f"{int(waited // 60)} minutes. Nothing was issued for it. Check the order on its platform; once "
            "it is recorded, send the refund round again (event red_operator_retry: the hold restarts).",
        )

    def manual(self, a: RedAttempt, blue_key: str, reason: str) -> Outcome:
        return self.end(
            a,
            OrderEvent.MANUAL,
            "RefundManual",
            {"last_error": reason, "blue_key": blue_key},
            alert=f"Refund {a.key} cannot be reversed automatically: {reason} ({blue_key}).",
        )

    def netted(self, a: RedAttempt, blue_key: str, amount: Decimal, detail: str) -> Outcome:
        fields: dict[str, FieldValue] = {"netted_into": blue_key, "refund_total": f"{amount:.2f}", "last_error": None}
        return self.end(a, OrderEvent.NETTED, "RefundNetted", fields, detail=detail)

    def refused(
        self, a: RedAttempt, blue_key: str, exc: ValidationFailed | None, *, reason: str = "over-refund"
    ) -> Outcome:
        problems = [v.as_dict() for v in exc.violations] if exc is not None else []
        text = "; ".join(f"{p['field']}: {p['message']} / {p['message_en']}" for p in problems) or reason
        return self.end(
            a,
            OrderEvent.REFUSE_REFUND,
            "RefundRefused",
            {"last_error": text[:300], "refusal": json.dumps(problems, ensure_ascii=False), "blue_key": blue_key},
            alert=f"Refund {a.key} was refused: it takes more than is left on {blue_key}. {text}",
        )

    # --- writes -----------------------------------------------------------------------------------
    def failed(self, a: RedAttempt, exc: PermanentTaxError) -> Outcome:
        fields: dict[str, FieldValue] = {
            "failure_code": exc.provider_code or exc.code,
            "failure_field": exc.field,
            "failure_reason": exc.message[:300],
        }
        return self.end(
            a,
            OrderEvent.RED_FAIL,
            "RedFailed",
            fields,
            alert=f"The tax platform refused the red {a.step} of refund {a.key}: {error_text(exc)} {exc.message[:200]}",
        )

    def release(self, a: RedAttempt, exc: BaseException) -> Outcome:
        event = OrderEvent.RED_UNKNOWN if a.unknown or a.sent.may_have_left else OrderEvent.RED_RETRY
        self.metric("RedAmbiguous" if event is OrderEvent.RED_UNKNOWN else "RedRetryable")
        return self.later(a, event, error_text(exc), counter="retries")

    def later(
        self,
        a: RedAttempt,
        event: OrderEvent,
        last_error: str | None,
        *,
        counter: str,
        delay: int | None = None,
        extra: dict[str, FieldValue] | None = None,
        bounded: bool = True,
    ) -> Outcome:
        now = self.clock().timestamp()
        n = a.record.number("retries") + a.record.number("checks") + 1
        give_up = bounded and n > self.horizon_attempts
        wait = delay if delay is not None else self.schedule.delay(min(n, self.horizon_attempts))
        fields: dict[str, FieldValue] = {**a.carried(), "last_error": last_error, **(extra or {})}
        add = {counter: 1, **({"sends": a.sent.issue_requests} if a.sent.issue_requests else {})}
        written = self.ledger.transition(
            a.key,
            event,
            now=now,
            claim_id=a.claim_id,
            due_at=None if give_up else now + wait + self.grace,
            fields=fields,
            add=add,
        )
        status = target(event)
        if not written.ok:
            return self.lost(a)
        self.log.info("red released", extra={**a.keys, "status": status.value, "error": last_error, "retry_in": wait})
        if give_up:
            self.alert(
                f"einvoice: refund {a.key} still {status.value} after the retry horizon",
                f"Refund {a.key} has been retried for {self.schedule.horizon // 3600} hours and is still "
                f"{status.value} ({last_error}). Once the cause is fixed send it round again (red_operator_retry).",
            )
            return Outcome(a.key, status, dead_letter=True, detail="retry horizon reached")
        return Outcome(a.key, status, retry_in=wait, detail=last_error or "waiting")

    def end(
        self,
        a: RedAttempt,
        event: OrderEvent,
        metric: str,
        fields: dict[str, FieldValue],
        *,
        alert: str | None = None,
        detail: str = "",
    ) -> Outcome:
        add = {"sends": a.sent.issue_requests} if a.sent.issue_requests else None
        now = self.clock().timestamp()
        # a red invoice is delivered as a blue one: due until its first delivery run (the sweeper's net)
        due_at = now + DELIVERY_DUE_SECONDS if event is OrderEvent.RED_ISSUED else None
        written = self.ledger.transition(
            a.key,
            event,
            now=now,
            claim_id=a.claim_id,
            fields={**a.carried(), **fields},
            add=add,
            due_at=due_at,
        )
        status = target(event)
        if not written.ok:
            return self.lost(a)
        self.metric(metric)
        self.log.info("refund settled", extra={**a.keys, "status": status.value, "detail": detail})
        if alert is not None:
            self.alert(f"einvoice: refund {a.key} {status.value}", alert)
        return Outcome(a.key, status, detail=detail or status.value)

    def issued(self, refund_key: str) -> None:
        """Tell :attr:`on_issued` (delivery, 换开); a failing listener never undoes the red invoice."""
        for listener in self.on_issued:
            try:
                listener(refund_key)
            except Exception:
                self.log.exception("a red-issued listener failed", extra={"order_key": refund_key})

    def lost(self, a: RedAttempt) -> Outcome:
        self.metric("LeaseLost")
        self.log.warning("red lease lost: not writing", extra=a.keys)
        return Outcome(a.key, OrderStatus.RED_ISSUING, detail="lease lost", lost=True)

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
