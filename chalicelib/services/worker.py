"""The SQS worker: one batch of messages → attempts and checks → which messages come back, and when.

``app.worker`` hands the batch (Lambda's SQS event, ``ReportBatchItemFailures``) to
:meth:`BatchWorker.handle`; it returns the ids of the messages to keep. A kept message has been
hidden by the worker itself for as long as its order should wait (the retry schedule, a live lease),
so the queue's visibility timeout only matters when an invocation dies. Besides that:

- **Remaining time**: a record is started only when the invocation has the time for a tax call
  (``min_attempt_seconds``); otherwise it and every later one are handed back at once (visibility 0),
  untouched, for another invocation.
- **Heartbeat**: before a record is started, its message's visibility is extended if it would end
  before the record could finish, so no second worker receives it while this one works on it. With
  the shipped values (visibility 90 s, timeout 60 s, a record started only with 23 s left) it cannot
  fire; it guards a deployment that sets the queue's visibility timeout at or below the function's.
- **Checks**: accepted requests of the batch are gathered per store and looked up later with one
  delayed check message (one query for all their serials) — at once when the store's first check is 0.
- **Dead letters**: a message that can never succeed (malformed) and an order past the retry horizon
  go to the dead-letter queue at once, with an alert for the latter.

Nothing here sleeps. The message shapes are in ``chalicelib/adapters/queue.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib.domain.errors import MalformedPayload
from chalicelib.domain.retry import RetrySchedule
from chalicelib.services.archive import ArchiveSession
from chalicelib.services.delivery_ports import DeliverQueuePort
from chalicelib.services.issue import IssueInvoice
from chalicelib.services.outcomes import Outcome, PendingCheck
from chalicelib.services.ports import IssueQueuePort

KINDS = ("paid", "refunded")


@dataclass(frozen=True)
class Message:
    message_id: str
    receipt: str
    body: str
    receive_count: int = 1

    @classmethod
    def of(cls, record: Any) -> Message:
        """From a Lambda SQS record (dict) or a Chalice/Powertools record object."""
        if isinstance(record, dict):
            attrs = record.get("attributes") or {}
            return cls(
                record["messageId"],
                record["receiptHandle"],
                record["body"],
                int(attrs.get("ApproximateReceiveCount", 1)),
            )
        attrs = getattr(record, "attributes", None) or {}
        count = attrs.get("ApproximateReceiveCount", 1) if isinstance(attrs, dict) else 1
        return cls(record.message_id, record.receipt_handle, record.body, int(count))


@dataclass(frozen=True)
class OrderMessage:
    order_key: str
    kind: str


@dataclass(frozen=True)
class CheckMessage:
    store_id: str
    pin: str
    entries: list[PendingCheck]
    round_no: int


def parse_body(body: str) -> OrderMessage | CheckMessage:
    """A message body; MalformedPayload when it is neither shape."""
    try:
        data = json.loads(body)
    except ValueError:
        raise MalformedPayload("issue message is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedPayload("issue message is not a JSON object")
    if "check" in data:
        store_id, pin, entries, round_no = (
            data.get("store_id"),
            data.get("pin"),
            data.get("check"),
            data.get("round", 1),
        )
        if not isinstance(store_id, str) or not isinstance(pin, str) or not isinstance(entries, list) or not entries:
            raise MalformedPayload("check message lacks store_id, pin or entries")
        if not isinstance(round_no, int) or isinstance(round_no, bool) or round_no < 1:
            raise MalformedPayload("check message has a bad round")
        try:
            checks = [PendingCheck.from_message(store_id, pin, e) for e in entries]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise MalformedPayload("check message has a malformed entry") from None
        return CheckMessage(store_id, pin, checks, round_no)
    order_key, kind = data.get("order_key"), data.get("kind", "paid")
    if not isinstance(order_key, str) or not order_key:
        raise MalformedPayload("issue message lacks order_key")
    if kind not in KINDS:
        raise MalformedPayload(f"issue message has an unknown kind {kind!r}")
    return OrderMessage(order_key, str(kind))


@dataclass
class BatchResult:
    """What one invocation did with its batch (returned to the event source and to tests)."""

    failed: list[str] = field(default_factory=list)
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def response(self) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": m} for m in self.failed]}


class BatchWorker:
    def __init__(
        self,
        *,
        use_case: IssueInvoice,
        queue: IssueQueuePort,
        schedule: RetrySchedule,
        first_check_seconds: Callable[[str], int],
        visibility_seconds: int,
        min_attempt_seconds: float,
        logger: Logger,
        clock: Callable[[], float] = time.time,
        archive: ArchiveSession | None = None,
        deliveries: DeliverQueuePort | None = None,
    ) -> None:
        self.archive = archive
        #: The deliver queue: every order this batch issued gets one message (one batch call).
        self.deliveries = deliveries
        self.use_case = use_case
        self.queue = queue
        self.schedule = schedule
        self.first_check_seconds = first_check_seconds
        self.visibility = visibility_seconds
        self.min_attempt = min_attempt_seconds
        self.log = logger
        self.clock = clock

    def handle(self, records: list[Mapping[str, Any]], remaining_ms: Callable[[], int]) -> BatchResult:
        started = self.clock()
        deadline = started + remaining_ms() / 1000
        messages = [Message.of(r) for r in records]
        result = BatchResult()
        if self.archive is not None:
            self.archive.begin()
        hide: list[tuple[str, int]] = []
        checks: dict[tuple[str, str], list[PendingCheck]] = {}
        requeue: list[tuple[str, str, int]] = []
        for i, m in enumerate(messages):
            now = self.clock()
            if deadline - now < self.min_attempt:
                rest = messages[i:]
                self.log.info("no time left for a tax call: handing back", extra={"count": len(rest)})
                hide.extend((r.receipt, 0) for r in rest)
                result.failed.extend(r.message_id for r in rest)
                break
            if now + self.min_attempt > started + self.visibility - 1:  # heartbeat
                self._hide([(m.receipt, self.visibility)])
            outcome = self._one(m, deadline)
            if outcome is None:
                continue
            result.outcomes[m.message_id] = outcome
            if outcome.check is not None:
                checks.setdefault((outcome.check.store_id, outcome.check.pin), []).append(outcome.check)
            requeue.extend((key, "paid", delay) for key, delay in outcome.requeue)
            if outcome.dead_letter:
                self._dead_letter(m, result)
            elif outcome.retry_in is not None:
                hide.append((m.receipt, outcome.retry_in))
                result.failed.append(m.message_id)
        requeue.extend(self._flush(checks, deadline))
        if requeue:
            self._requeue(requeue)
        if hide:
            self._hide(hide)
        self._deliver()
        self._archive(messages, result)
        return result

    def _deliver(self) -> None:
        """Queue the delivery of what this batch issued; a failure never fails issuing (it is logged,
        and ``einvoice invoices resend`` delivers such an order)."""
        keys = self.use_case.settle.drain_issued()
        if not keys or self.deliveries is None:
            return
        try:
            self.deliveries.send_many(keys)
        except Exception:
            self.log.exception("could not queue deliveries", extra={"count": len(keys), "order_keys": keys})

    def _archive(self, messages: list[Message], result: BatchResult) -> None:
        """Write the invocation's audit records before the batch response acknowledges anything. If
        that fails, no message is acknowledged: every one comes back, and its re-run queries first
        (the tax calls were made; their records stay pending in this container for its next flush)."""
        if self.archive is None:
            return
        try:
            self.archive.flush()
        except Exception:
            self.log.exception("audit archive not written: the whole batch comes back", extra={"count": len(messages)})
            result.failed = list(dict.fromkeys([*result.failed, *(m.message_id for m in messages)]))

    def _one(self, m: Message, deadline: float) -> Outcome | None:
        try:
            parsed = parse_body(m.body)
        except MalformedPayload as exc:
            self.log.error(
                "malformed issue message: dead-lettered", extra={"message_id": m.message_id, "error": exc.message}
            )
            try:
                self.queue.dead_letter(m.body)
            except Exception:
                self.log.exception("could not dead-letter a malformed message; it stays on the queue")
                return Outcome("", None, retry_in=self.schedule.delay(1))
            return None
        try:
            if isinstance(parsed, CheckMessage):
                return self.use_case.check(parsed.store_id, parsed.pin, parsed.entries, round_no=parsed.round_no)
            return self.use_case.attempt(parsed.order_key, parsed.kind, deadline=deadline)
        except Exception as exc:
            # Before a claim (ledger or store unavailable, no record): nothing is held, retry later;
            # the receive count is the only counter here, and maxReceiveCount is the backstop.
            key = parsed.store_id if isinstance(parsed, CheckMessage) else parsed.order_key
            delay = self.schedule.delay(max(1, min(m.receive_count, 60)))
            self.log.warning(
                "message not handled; retried later",
                extra={
                    "order_key": key,
                    "message_id": m.message_id,
                    "error": getattr(exc, "code", type(exc).__name__),
                    "retry_in": delay,
                },
            )
            return Outcome(key, None, retry_in=delay, detail=type(exc).__name__)

    def _flush(self, checks: dict[tuple[str, str], list[PendingCheck]], deadline: float) -> list[tuple[str, str, int]]:
        """One check per store: now when its first check is 0 (and time allows), else a delayed message."""
        requeue: list[tuple[str, str, int]] = []
        for (store_id, pin), entries in checks.items():
            delay = self.first_check_seconds(store_id)
            if delay <= 0 and deadline - self.clock() >= self.min_attempt:
                try:
                    outcome = self.use_case.check(store_id, pin, entries, round_no=1)
                except Exception:
                    self.log.exception("immediate check failed; checking later", extra={"store_id": store_id})
                    delay = self.schedule.delay(1)
                else:
                    requeue.extend((k, "paid", d) for k, d in outcome.requeue)
                    continue
            try:
                self.queue.send_check(store_id, pin, [e.as_message() for e in entries], delay_seconds=max(delay, 0))
            except Exception:
                # The leases still cover the orders; once they expire the sweeper takes them over.
                self.log.exception(
                    "could not send a check message", extra={"store_id": store_id, "count": len(entries)}
                )
        return requeue

    def _requeue(self, messages: list[tuple[str, str, int]]) -> None:
        try:
            self.queue.send_many(messages)
        except Exception:
            # Each record is due (due_at) for the sweeper: it is picked up a little later.
            self.log.exception("could not re-queue orders; the sweeper will", extra={"count": len(messages)})

    def _hide(self, receipts: list[tuple[str, int]]) -> None:
        try:
            self.queue.hide(receipts)
        except Exception:
            # The messages come back after the queue's visibility timeout instead.
            self.log.exception("could not change message visibility", extra={"count": len(receipts)})

    def _dead_letter(self, m: Message, result: BatchResult) -> None:
        try:
            self.queue.dead_letter(m.body)
        except Exception:
            self.log.exception("could not dead-letter a message; it stays on the queue")
            self._hide([(m.receipt, self.schedule.cap)])
            result.failed.append(m.message_id)
