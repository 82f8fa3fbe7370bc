"""The intake's duplicate handling, on in-memory ports: the order record's one conditional put is the
duplicate check (no separate event record), and what its answer means.

The ledger is ``tests/support/fake_ledger.FakeLedger`` (held to the DynamoDB ledger's contract by
``tests/contract``). The route tests (``test_webhook_route.py``, ``test_platform_routes.py``) run the
same paths through the app against moto; these pin each branch, and that a duplicate costs one write.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.models import Store
from chalicelib.domain.order_state import OrderStatus, order_key
from chalicelib.domain.taxcodes import TaxCodeTable
from chalicelib.services.ingest import Ingest, IngestResult
from chalicelib.services.ports import OrderRecord
from chalicelib.services.rejections import BurstPolicy, RejectionAlerts
from tests.app.conftest import SECRET, signed, standard_event
from tests.support.fake_ledger import FakeLedger

ROOT = Path(__file__).resolve().parents[2]
STORE_DOC: dict[str, Any] = json.loads((ROOT / "examples" / "stores" / "demo-shanghai.json").read_text("utf-8"))
CODE = STORE_DOC["catalogue"]["LATTE-L"]["tax_code"]  # every line of the test events is classified by it


class Queue:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.down = False

    def send(self, order_key: str, kind: str) -> str:
        if self.down:
            raise RuntimeError("sqs down")
        self.sent.append((order_key, kind))
        return f"m-{len(self.sent)}"


class Ports:
    def __init__(self, **store_changes: Any) -> None:
        self.store = Store.model_validate({**STORE_DOC, **store_changes})
        self.table = TaxCodeTable.default()
        self.ledger = FakeLedger()
        self.queue = Queue()
        self.alerts: list[tuple[str, str]] = []
        self.now = 1_800_000_000.0
        self.rejections = RejectionAlerts(
            counter=self.ledger,
            alerts=self,
            policy=BurstPolicy(threshold=2, window_seconds=600),
            logger=logging.getLogger("test"),
            clock=lambda: self.now,
        )

    def publish(self, subject: str, message: str) -> None:  # the alarm topic
        self.alerts.append((subject, message))

    def get(self, store_id: str) -> Store:  # the store registry
        return self.store

    def get_json(self, name: str) -> dict[str, Any]:  # the secrets
        return {"secrets": [SECRET]}

    def current(self) -> TaxCodeTable:  # the tax-code source
        return self.table

    def record(self, order_id: str) -> OrderRecord:
        found = self.ledger.get_order(key(order_id))
        assert found is not None, order_id
        return found

    def post(self, delivery: tuple[bytes, dict[str, str]]) -> IngestResult:
        ingest = Ingest(
            stores=self, secrets=self, ledger=self.ledger, queue=self.queue, taxcodes=self, rejections=self.rejections
        )
        body, headers = delivery
        return ingest("standard", self.store.store_id, body, headers, datetime.now(UTC))


def key(order_id: str) -> str:
    return order_key("demo-shanghai", "standard", order_id)


def test_a_new_order_is_one_put_and_its_enqueued_transition() -> None:
    ports = Ports()
    result = ports.post(signed(standard_event("D-1")))
    assert (result.outcome, result.order_key, result.status) == ("queued", key("D-1"), OrderStatus.QUEUED)
    assert ports.ledger.calls == ["create_order", "transition:enqueued"]  # no event record, no read
    assert ports.queue.sent == [(key("D-1"), "paid")]


@pytest.mark.parametrize("resigned", [False, True], ids=["same-delivery", "re-signed"])
def test_a_repeated_delivery_is_a_duplicate_with_the_existing_status(resigned: bool) -> None:
    ports = Ports()
    event = standard_event("D-2")
    first = signed(event)
    ports.post(first)
    ports.ledger.calls.clear()
    again = ports.post(signed(event) if resigned else first)  # re-signed: a new event id, the same order
    assert (again.outcome, again.order_key, again.status) == ("duplicate", key("D-2"), OrderStatus.QUEUED)
    assert ports.ledger.calls == ["create_order"]  # the refused put is the whole duplicate check
    assert ports.queue.sent == [(key("D-2"), "paid")]


def test_a_duplicate_of_an_accepted_order_that_now_fails_validation_is_still_a_duplicate() -> None:
    """The trap: the tax-code table changed after the order was accepted. A 422 would make the platform
    retry the delivery for days; the order is recorded, so the answer is ``duplicate``."""
    ports = Ports()
    event = standard_event("D-3")
    ports.post(signed(event))
    ports.table = TaxCodeTable("without-the-code", [e for e in TaxCodeTable.default() if e.code != CODE])
    with pytest.raises(ValidationFailed):  # the change does make this order invalid …
        ports.post(signed(standard_event("D-3-new")))

    for delivery in (signed(event), signed(event)):  # … but not the one already accepted
        again = ports.post(delivery)
        assert (again.outcome, again.order_key, again.status) == ("duplicate", key("D-3"), OrderStatus.QUEUED)
    assert ports.record("D-3").status is OrderStatus.QUEUED


def test_a_duplicate_of_a_held_order_that_now_fails_validation_is_still_a_duplicate() -> None:
    ports = Ports(pilot_percentage=0)  # every order is issued by hand
    event = standard_event("D-4")
    assert ports.post(signed(event)).status is OrderStatus.HELD
    ports.table = TaxCodeTable("without-the-code", [e for e in TaxCodeTable.default() if e.code != CODE])
    again = ports.post(signed(event))
    assert (again.outcome, again.status) == ("duplicate", OrderStatus.HELD)
    assert ports.queue.sent == []


def test_a_recorded_but_never_queued_order_is_enqueued_again_even_if_it_now_fails_validation() -> None:
    ports = Ports()
    event = standard_event("D-5")
    ports.queue.down = True
    with pytest.raises(RuntimeError):
        ports.post(signed(event))
    assert ports.record("D-5").status is OrderStatus.RECEIVED
    ports.queue.down = False
    ports.table = TaxCodeTable("without-the-code", [e for e in TaxCodeTable.default() if e.code != CODE])
    retry = ports.post(signed(event))
    assert (retry.outcome, retry.order_key, retry.status) == ("queued", key("D-5"), OrderStatus.QUEUED)
    assert ports.queue.sent == [(key("D-5"), "paid")]


def test_a_rejected_order_is_kept_and_a_corrected_resubmission_replaces_it() -> None:
    ports = Ports()
    bad = standard_event("D-6", buyer={"title": "某公司", "tax_id": "12345", "type": "company"})
    with pytest.raises(ValidationFailed):
        ports.post(signed(bad))
    rejected = ports.record("D-6")
    assert rejected.status is OrderStatus.REJECTED and rejected.violations
    with pytest.raises(ValidationFailed):  # still invalid: rejected again, not a duplicate
        ports.post(signed(bad))
    assert ports.queue.sent == []

    fixed = ports.post(signed(standard_event("D-6")))
    assert (fixed.outcome, fixed.status) == ("queued", OrderStatus.QUEUED)
    assert ports.record("D-6").violations is None
    assert ports.queue.sent == [(key("D-6"), "paid")]


def test_an_accepted_order_costs_no_rejection_bookkeeping() -> None:
    ports = Ports()
    ports.post(signed(standard_event("D-7")))
    assert ports.ledger.calls == ["create_order", "transition:enqueued"]
    assert ports.ledger.rejection_windows == {}


def test_rejections_are_counted_per_window_and_alert_once_at_the_threshold() -> None:
    ports = Ports()
    bad = {"title": "某公司", "tax_id": "12345", "type": "company"}
    for i in range(3):  # the second one reaches the threshold; the third does not alert again
        with pytest.raises(ValidationFailed):
            ports.post(signed(standard_event(f"W-{i}", buyer=bad)))
    assert len(ports.alerts) == 1
    subject, message = ports.alerts[0]
    assert "2 orders of store demo-shanghai" in subject and key("W-1") in message
    assert "buyer.tax_id: tax_id_format" in message and "12345" not in message

    ports.now += 600  # the next window counts from zero
    for i in range(2):
        with pytest.raises(ValidationFailed):
            ports.post(signed(standard_event(f"W-next-{i}", buyer=bad)))
    assert len(ports.alerts) == 2
    assert sorted(ports.ledger.rejection_windows.values()) == [2, 3]
