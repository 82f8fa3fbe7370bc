"""The outbox sweeper: re-send orders that were recorded but never handed to SQS.

Run on a schedule. The grace period keeps it from racing an intake request that is between its two
writes right now; sending twice is harmless anyway (the worker's claim is conditional).
"""

from __future__ import annotations

from typing import Any

GRACE_SECONDS = 120.0


def sweep(ledger: Any, queue: Any, *, grace_seconds: float = GRACE_SECONDS, limit: int = 100) -> int:
    sent = 0
    for order_key in ledger.pending_outbox(grace_seconds, limit=limit):
        record = ledger.get_order(order_key)
        if record is None or not record.outbox_pending:
            continue
        queue.send(order_key, record.kind)
        ledger.mark_queued(order_key)
        sent += 1
    return sent
