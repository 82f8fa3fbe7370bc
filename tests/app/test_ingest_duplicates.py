"""The intake's duplicate handling: the order record's one conditional put is the duplicate check, the
event id recorded in the same write, and what its answer means.

Most tests run on in-memory ports: the ledger is ``tests/support/fake_ledger.FakeLedger`` (held to the
DynamoDB ledger's contract by ``tests/contract``); they pin each branch, and that a duplicate costs one
write. The event-id conflicts also run through the app against moto (the last section), as do the route
tests (``test_webhook_route.py``, ``test_platform_routes.py``).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.event_ids import EventIdConflict
from chalicelib.domain.models import RejectionReply, Store
from chalicelib.domain.order_keys import order_key
from chalicelib.domain.order_state import OrderStatus
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
    assert ports.ledger.calls == ["create_order", "transition:enqueued"]  # the event id in the same write, no read
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


# --- an event id reused by another order: a conflict, never a duplicate ------------------------------
def test_an_order_sent_with_another_orders_event_id_is_recorded_as_a_conflict() -> None:
    ports = Ports()
    ports.post(signed(standard_event("E-A"), msg_id="msg_reused"))
    ports.ledger.calls.clear()
    with pytest.raises(EventIdConflict) as refused:  # a store that refuses rejected orders: 409
        ports.post(signed(standard_event("E-B"), msg_id="msg_reused"))
    # the refused write, the order recorded as rejected, the rejection counted for the burst alert
    assert ports.ledger.calls == ["create_order", "create_order", "count_rejection"]
    assert (refused.value.order_key, refused.value.held_by) == (key("E-B"), key("E-A"))
    [conflict] = refused.value.violations
    assert (conflict.field, conflict.code) == ("event_id", "event_id_conflict")
    assert key("E-A") in conflict.message and key("E-A") in conflict.message_en and "msg_reused" in conflict.message_en
    b = ports.record("E-B")  # nothing lost: kept for the operator, as any rejected order
    assert b.status is OrderStatus.REJECTED and b.violations == [conflict.as_dict()]
    assert b.payload["event"]["order_id"] == "E-B" and "order" not in b.payload
    assert ports.record("E-A").status is OrderStatus.QUEUED
    assert ports.queue.sent == [(key("E-A"), "paid")]
    assert sum(ports.ledger.rejection_windows.values()) == 1  # counted for the rejection alert

    with pytest.raises(EventIdConflict):  # the platform's retry of B: the same conflict, not a duplicate
        ports.post(signed(standard_event("E-B"), msg_id="msg_reused"))
    fresh = ports.post(signed(standard_event("E-B"), msg_id="msg_own"))  # B with an id of its own replaces it
    assert (fresh.outcome, fresh.status) == ("queued", OrderStatus.QUEUED)


def test_the_operator_corrects_a_conflicting_order_and_it_is_queued() -> None:
    """The conflicting order is genuine (signed): ``einvoice orders fix KEY`` checks it again and issues it."""
    from chalicelib.services.rejections import FixRejected

    ports = Ports()
    ports.post(signed(standard_event("E-I"), msg_id="msg_i"))
    with pytest.raises(EventIdConflict):
        ports.post(signed(standard_event("E-J"), msg_id="msg_i"))
    fix = FixRejected(ledger=ports.ledger, stores=ports, taxcodes=ports, queue=ports.queue)
    result = fix(key("E-J"), {}, by="ops-lin")
    assert result.ok, result.message
    assert ports.record("E-J").status is OrderStatus.QUEUED and ports.record("E-J").violations is None
    assert ports.queue.sent == [(key("E-I"), "paid"), (key("E-J"), "paid")]


def test_a_conflict_is_acknowledged_where_the_store_acknowledges_rejected_orders() -> None:
    ports = Ports(rejection_replies={"standard": "acknowledge"})
    ports.post(signed(standard_event("E-C"), msg_id="msg_shared"))
    result = ports.post(signed(standard_event("E-D"), msg_id="msg_shared"))
    assert (result.outcome, result.order_key, result.conflict) == ("rejected", key("E-D"), key("E-C"))
    assert [v.code for v in result.violations] == ["event_id_conflict"]
    assert ports.record("E-D").status is OrderStatus.REJECTED


def test_a_conflicting_order_that_also_breaks_a_rule_keeps_every_violation() -> None:
    ports = Ports()
    ports.post(signed(standard_event("E-E"), msg_id="msg_twice"))
    bad = standard_event("E-F", buyer={"title": "某公司", "tax_id": "12345", "type": "company"})
    with pytest.raises(EventIdConflict) as refused:
        ports.post(signed(bad, msg_id="msg_twice"))
    assert [v.code for v in refused.value.violations] == ["event_id_conflict", "tax_id_format"]
    assert [v["code"] for v in ports.record("E-F").violations or []] == ["event_id_conflict", "tax_id_format"]


def test_the_same_order_with_a_new_or_another_orders_event_id_stays_a_duplicate() -> None:
    """The recorded order comes first: nothing is lost, so it is the plain duplicate it always was."""
    ports = Ports()
    ports.post(signed(standard_event("E-G"), msg_id="msg_g"))
    ports.post(signed(standard_event("E-H"), msg_id="msg_h"))
    for msg_id in ("msg_g", "msg_new", "msg_h"):
        again = ports.post(signed(standard_event("E-G"), msg_id=msg_id))
        assert (again.outcome, again.order_key, again.conflict) == ("duplicate", key("E-G"), None)


# --- the same, through the app on moto ---------------------------------------------------------------
URL = "/webhooks/standard/demo-shanghai"


def test_an_order_sent_with_another_orders_event_id_is_answered_409_and_recorded(client: Any, seeded: Any) -> None:
    """The finding: order B sent with order A's event id was answered ``200 duplicate`` naming A, and B
    was never recorded. Now B is recorded as rejected (the conflict named) and answered 409."""
    from chalicelib.adapters.ledger import Ledger

    body, headers = signed(standard_event("M-A"), msg_id="msg_moto_reused")
    assert client.http.post(URL, body=body, headers=headers).status_code == 202
    again = client.http.post(URL, body=body, headers=headers)  # A re-delivered: a plain duplicate
    assert (again.status_code, again.json_body["outcome"]) == (200, "duplicate")

    body, headers = signed(standard_event("M-B"), msg_id="msg_moto_reused")
    r = client.http.post(URL, body=body, headers=headers)
    assert r.status_code == 409, r.body
    assert r.json_body["error"] == "event_id_conflict"
    assert (r.json_body["order_key"], r.json_body["held_by"], r.json_body["status"]) == (
        key("M-B"),
        key("M-A"),
        "rejected",
    )
    assert [e["code"] for e in r.json_body["errors"]] == ["event_id_conflict"]
    ledger = Ledger(seeded.env["LEDGER_TABLE"])
    b = ledger.get_order(key("M-B"))
    assert b is not None and b.status is OrderStatus.REJECTED
    assert (
        b.violations and b.violations[0]["code"] == "event_id_conflict" and key("M-A") in b.violations[0]["message_en"]
    )
    a = ledger.get_order(key("M-A"))
    assert a is not None and a.status is OrderStatus.QUEUED


def test_a_conflict_is_acknowledged_through_the_app_where_the_store_says_so(client: Any, seeded: Any) -> None:
    from chalicelib.adapters.ledger import Ledger
    from chalicelib.adapters.stores import StoreRegistry

    registry = StoreRegistry(seeded.env["STORES_TABLE"])
    acknowledge = {"standard": RejectionReply.ACKNOWLEDGE}
    registry.put(registry.get("demo-shanghai").model_copy(update={"rejection_replies": acknowledge}))
    for order_id, status in (("M-C", 202), ("M-D", 200)):
        body, headers = signed(standard_event(order_id), msg_id="msg_moto_shared")
        r = client.http.post(URL, body=body, headers=headers)
        assert r.status_code == status, r.body
    assert (r.json_body["outcome"], r.json_body["order_key"]) == ("rejected", key("M-D"))
    assert [e["code"] for e in r.json_body["errors"]] == ["event_id_conflict"]
    assert Ledger(seeded.env["LEDGER_TABLE"]).get_order(key("M-D")).status is OrderStatus.REJECTED


def test_woocommerce_orders_sharing_a_delivery_id_are_two_orders(platform_client: Any, stack: Any) -> None:
    """WooCommerce's delivery id is a hash of the webhook and the current second: two orders delivered
    in the same second carry the same one, so it names no order and no conflict is looked for."""
    from chalicelib.adapters.ledger import Ledger
    from tests.app.conftest import PLATFORM_STORE
    from tests.support import platform_events as pe

    for order_id in ("1201", "1202"):
        body, headers = pe.paid("woocommerce", order_id)
        delivery = {k: v for k, v in headers.items() if k.lower() != "x-wc-webhook-delivery-id"}
        r = platform_client.http.post(
            f"/webhooks/woocommerce/{PLATFORM_STORE}",
            body=body,
            headers={**delivery, "X-WC-Webhook-Delivery-ID": "5f0c1e9a2b7d4c3e8f6a1b2c3d4e5f60"},
        )
        assert (r.status_code, r.json_body["outcome"]) == (202, "queued"), r.body
        record = Ledger(stack.env["LEDGER_TABLE"]).get_order(order_key(PLATFORM_STORE, "woocommerce", order_id))
        assert record is not None and record.status is OrderStatus.QUEUED
