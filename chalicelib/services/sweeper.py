"""The sweeper (scheduled, every minute): re-queue every record whose next step is overdue.

A record carries ``due_at`` while it waits for something: the outbox (recorded, message not yet
known to be in SQS), a live claim (its lease), a retry or a re-check (its time plus a grace period).
A record still due after that means its message was lost — SQS was unreachable when it was to be
sent, a worker died holding a check, a message was purged. The sweeper sends a fresh message for
it; the worker's claim makes a duplicate harmless and the query-first rule makes a takeover safe.
Each swept record's ``due_at`` is moved on first (conditionally), so two sweepers never both send.
"""

from __future__ import annotations

from chalicelib.domain.delivery import DELIVERABLE, DELIVERY_DUE_SECONDS
from chalicelib.services.delivery_ports import DeliverQueuePort
from chalicelib.services.ports import IssueQueuePort, OrderLedger


def sweep(
    ledger: OrderLedger,
    queue: IssueQueuePort,
    *,
    now: float,
    grace_seconds: float,
    limit: int = 200,
    deliveries: DeliverQueuePort | None = None,
) -> int:
    """Re-queue up to ``limit`` overdue records; the number sent. An issued record still due was never
    reached by a delivery run (its message lost): it goes to the deliver queue, looked at again after
    ``DELIVERY_DUE_SECONDS`` if that is lost too."""
    sent = 0
    for record in ledger.due(now, limit=limit):
        was = record.text("due_at")
        deliver = record.status in DELIVERABLE
        if deliver and deliveries is None:
            continue
        wait = DELIVERY_DUE_SECONDS if deliver else grace_seconds
        if was is None or not ledger.postpone(record.order_key, was=was, due_at=now + wait):
            continue
        if deliveries is not None and deliver:
            deliveries.send_many([record.order_key], reason="swept")
        else:
            queue.send(record.order_key, record.kind)
        sent += 1
    return sent
