"""SQS in virtual time: the issue queue's semantics (delays, visibility, receive counts, the redrive to
the dead-letter queue after ``maxReceiveCount``) on a clock the test moves, so the real worker, the real
ledger (moto) and the real sandbox can live through a two-hour outage in seconds.

Only the queue is simulated, because SQS time cannot be moved; :func:`drive` plays Lambda's event
source: receive a batch, invoke the worker, delete what it did not report as failed.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.config import MAX_RECEIVE_COUNT, QUEUE_VISIBILITY_SECONDS, WORKER_BATCH_SIZE, WORKER_TIMEOUT_SECONDS


class VirtualClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def utc(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class _Message:
    message_id: str
    body: str
    visible_at: float
    receives: int = 0
    receipt: str = ""


@dataclass
class VirtualQueue:
    clock: VirtualClock
    visibility: int = QUEUE_VISIBILITY_SECONDS
    max_receives: int = MAX_RECEIVE_COUNT
    messages: dict[str, _Message] = field(default_factory=dict)
    dead: list[str] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    hidden: list[tuple[str, int]] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    # --- IssueQueuePort ---------------------------------------------------------------------------
    def _put(self, body: dict[str, Any], delay: int) -> str:
        mid = f"m{next(self._ids)}"
        text = json.dumps(body, ensure_ascii=False)
        self.messages[mid] = _Message(mid, text, self.clock.now + max(0, min(900, delay)))
        self.sent.append(body)
        return mid

    def send(self, order_key: str, kind: str, *, delay_seconds: int = 0) -> str:
        return self._put({"order_key": order_key, "kind": kind}, delay_seconds)

    def send_many(self, messages: list[tuple[str, str, int]]) -> None:
        for key, kind, delay in messages:
            self.send(key, kind, delay_seconds=delay)

    def send_check(
        self, store_id: str, pin: str, entries: list[dict[str, str]], *, delay_seconds: int, round_no: int = 1
    ) -> str:
        return self._put({"check": entries, "store_id": store_id, "pin": pin, "round": round_no}, delay_seconds)

    def hide(self, receipts: list[tuple[str, int]]) -> None:
        by_receipt = {m.receipt: m for m in self.messages.values()}
        for receipt, seconds in receipts:
            self.hidden.append((receipt, seconds))
            if receipt in by_receipt:
                by_receipt[receipt].visible_at = self.clock.now + seconds

    def dead_letter(self, body: str) -> None:
        self.dead.append(body)

    # --- the event source -------------------------------------------------------------------------
    def receive(self, limit: int = WORKER_BATCH_SIZE) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        for m in sorted(self.messages.values(), key=lambda m: m.visible_at):
            if len(batch) >= limit or m.visible_at > self.clock.now:
                break
            if m.receives >= self.max_receives:  # the redrive policy
                self.dead.append(m.body)
                del self.messages[m.message_id]
                continue
            m.receives += 1
            m.receipt = f"{m.message_id}#{m.receives}"
            m.visible_at = self.clock.now + self.visibility
            batch.append(
                {
                    "messageId": m.message_id,
                    "receiptHandle": m.receipt,
                    "body": m.body,
                    "attributes": {"ApproximateReceiveCount": str(m.receives)},
                }
            )
        return batch

    def delete(self, message_ids: list[str]) -> None:
        for mid in message_ids:
            self.messages.pop(mid, None)

    def next_visible(self) -> float | None:
        return min((m.visible_at for m in self.messages.values()), default=None)


def drive(
    worker: Any,
    queue: VirtualQueue,
    clock: VirtualClock,
    *,
    until: Callable[[], bool],
    horizon: float,
    on_tick: Callable[[], None] | None = None,
) -> int:
    """Play the event source until ``until()`` or ``horizon`` virtual seconds passed; invocations made."""
    end = clock.now + horizon
    invocations = 0
    while clock.now <= end and not until():
        batch = queue.receive()
        if not batch:
            nxt = queue.next_visible()
            if nxt is None:
                break
            clock.now = max(clock.now, nxt)
            if on_tick:
                on_tick()
            continue
        deadline = clock.now + WORKER_TIMEOUT_SECONDS

        def remaining_ms(deadline: float = deadline) -> int:
            return int((deadline - clock.now) * 1000)

        result = worker.handle(batch, remaining_ms)
        invocations += 1
        failed = set(result.failed)
        queue.delete([r["messageId"] for r in batch if r["messageId"] not in failed])
        clock.advance(0.5)
        if on_tick:
            on_tick()
    return invocations
