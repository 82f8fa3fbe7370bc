"""The deliver queue's batch handler (``app.deliverer``): one delivery run per message.

A run that must be retried has its message hidden for the run's ``retry_in`` (the queue's visibility,
``chalicelib.domain.delivery.RETRY_DELAYS``) and reported as a batch-item failure; the attempt number
is the message's receive count. A message that is no deliver message is dropped with an error log (it
can never succeed); an unexpected error is retried on the same schedule, and the queue's
``maxReceiveCount`` moves a message that keeps failing to the deliver DLQ. Nothing sleeps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib.domain.delivery import RETRY_DELAYS, retry_delay
from chalicelib.services.deliver import DeliverInvoice, DeliveryOutcome, parse_message
from chalicelib.services.delivery_ports import DeliverQueuePort
from chalicelib.services.worker import Message

#: A run is started only with this much of the invocation left (a render, S3, SES and SNS calls).
MIN_RUN_SECONDS = 10.0


@dataclass
class DeliverBatchResult:
    failed: list[str] = field(default_factory=list)
    outcomes: dict[str, DeliveryOutcome] = field(default_factory=dict)

    def response(self) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": m} for m in self.failed]}


class DeliverBatch:
    def __init__(self, *, use_case: DeliverInvoice, queue: DeliverQueuePort, logger: Logger) -> None:
        self.use_case = use_case
        self.queue = queue
        self.log = logger

    def handle(self, records: list[Mapping[str, Any]], remaining_ms: Callable[[], int]) -> DeliverBatchResult:
        result = DeliverBatchResult()
        hide: list[tuple[str, int]] = []
        for record in records:
            m = Message.of(record)
            if remaining_ms() / 1000 < MIN_RUN_SECONDS:
                hide.append((m.receipt, 0))
                result.failed.append(m.message_id)
                continue
            try:
                order_key, _reason = parse_message(m.body)
            except ValueError:
                self.log.error("not a deliver message: dropped", extra={"message_id": m.message_id})
                continue
            try:
                outcome = self.use_case.deliver(order_key, attempt=m.receive_count)
            except Exception:
                delay = retry_delay(m.receive_count) or RETRY_DELAYS[-1]
                self.log.exception("delivery run failed; retried", extra={"order_key": order_key, "retry_in": delay})
                hide.append((m.receipt, delay))
                result.failed.append(m.message_id)
                continue
            result.outcomes[m.message_id] = outcome
            if outcome.retry_in is not None:
                hide.append((m.receipt, outcome.retry_in))
                result.failed.append(m.message_id)
        if hide:
            try:
                self.queue.hide(hide)
            except Exception:
                self.log.exception("could not change message visibility", extra={"count": len(hide)})
        return result
