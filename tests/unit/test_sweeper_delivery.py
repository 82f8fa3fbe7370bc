"""The sweeper's net for a lost delivery message: an issued record still due goes to the deliver queue
(not the issue queue), once per DELIVERY_DUE_SECONDS; without a deliver queue it is left alone."""

from __future__ import annotations

from collections.abc import Sequence

from chalicelib.domain.delivery import DELIVERY_DUE_SECONDS
from chalicelib.domain.order_state import OrderEvent, OrderStatus
from chalicelib.services.sweeper import sweep
from tests.support.fake_ledger import FakeLedger

NOW = 1_800_000_000.0
KEY = "s1:shopify:9001"


class Queue:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, order_key: str, kind: str, *, delay_seconds: int = 0) -> str:
        self.sent.append((order_key, kind))
        return "m"


class Deliveries:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send_many(self, order_keys: Sequence[str], *, reason: str = "issued") -> None:
        self.sent.extend((k, reason) for k in order_keys)

    def hide(self, receipts: list[tuple[str, int]]) -> None: ...


def issued_and_due(ledger: FakeLedger) -> None:
    assert ledger.create_order(KEY, "s1", kind="paid", status="received", payload={}, outbox=True) is None
    assert ledger.transition(KEY, OrderEvent.CLAIM, now=NOW, claim_id="c1", lease_until=NOW + 60).ok
    assert ledger.transition(KEY, OrderEvent.ISSUED, now=NOW, claim_id="c1", due_at=NOW + DELIVERY_DUE_SECONDS).ok


def test_an_issued_record_never_reached_by_delivery_is_sent_to_the_deliver_queue_once_per_period() -> None:
    ledger, queue, deliveries = FakeLedger(clock=lambda: NOW), Queue(), Deliveries()
    issued_and_due(ledger)
    later = NOW + DELIVERY_DUE_SECONDS + 1
    assert sweep(ledger, queue, now=later, grace_seconds=120, deliveries=deliveries) == 1
    assert deliveries.sent == [(KEY, "swept")] and queue.sent == []
    assert ledger.get_order(KEY).status is OrderStatus.ISSUED
    # postponed by a whole delivery period, not the sweeper's grace: the next minute sends nothing
    assert sweep(ledger, queue, now=later + 60, grace_seconds=120, deliveries=deliveries) == 0
    assert sweep(ledger, queue, now=later + DELIVERY_DUE_SECONDS + 1, grace_seconds=120, deliveries=deliveries) == 1


def test_a_delivery_run_settles_it_and_the_sweeper_sends_nothing() -> None:
    ledger, queue, deliveries = FakeLedger(clock=lambda: NOW), Queue(), Deliveries()
    issued_and_due(ledger)
    assert ledger.annotate(KEY, fields={"pdf_key": "s1/2026/12/02/x.pdf"}, settle_due=True)
    assert sweep(ledger, queue, now=NOW + 10 * DELIVERY_DUE_SECONDS, grace_seconds=120, deliveries=deliveries) == 0
    assert deliveries.sent == [] and queue.sent == []


def test_without_a_deliver_queue_an_issued_record_is_left_alone_never_re_issued() -> None:
    ledger, queue = FakeLedger(clock=lambda: NOW), Queue()
    issued_and_due(ledger)
    assert sweep(ledger, queue, now=NOW + DELIVERY_DUE_SECONDS + 1, grace_seconds=120) == 0
    assert queue.sent == []
