"""One contract, two ledgers: the DynamoDB ledger (on the moto server) and the in-memory fake.

Every row of the transition table is exercised from every status: an event is applied exactly when
the table allows it from the record's status (and the claim and lease conditions hold), and a refused
event leaves the record untouched. The fake's semantics can therefore never drift from DynamoDB's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.domain.delivery import DELIVERABLE
from chalicelib.domain.order_state import (
    FENCED,
    LEASED,
    RELEASING,
    REPLACES_PAYLOAD,
    TERMINAL,
    TRANSITIONS,
    OrderEvent,
    OrderStatus,
    sources,
)
from tests.support.fake_ledger import FakeLedger

NOW = 1_800_000_000.0
KEY = "s1:shopify:1001"
OTHER = "s1:woocommerce:1001"
PAYLOAD = {"event": {"id": "e1"}, "order": {"total": "10.00"}}
CORRECTED = {"event": {"id": "e1", "buyer": {"title": "某公司"}}, "order": {"total": "10.00"}}


@pytest.fixture(scope="module")
def ledger_table(moto_url: str) -> Iterator[str]:
    """One ledger table (the deploy template's definition) on the moto server for the module."""
    import uuid

    import boto3

    from chalicelib.adapters import aws
    from infra.local import bootstrap

    session = boto3.session.Session(region_name="cn-north-1")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", moto_url)
        aws.set_session(session)
        created = bootstrap(session, prefix=f"c{uuid.uuid4().hex[:8]}")
        yield created.env["LEDGER_TABLE"]
        aws.set_session(None)


@pytest.fixture(params=["memory", "dynamodb"])
def ledger(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield FakeLedger(clock=lambda: NOW)
        return
    from chalicelib.adapters import aws
    from chalicelib.adapters.ledger import Ledger

    table = request.getfixturevalue("ledger_table")
    for key in (KEY, OTHER):
        aws.client("dynamodb").delete_item(TableName=table, Key={"pk": {"S": f"order#{key}"}, "sk": {"S": "order"}})
    yield Ledger(table, clock=lambda: NOW)


def put_at(ledger: Any, status: OrderStatus, *, claim_id: str | None = "c1", lease_until: float | None = None) -> None:
    """A record in ``status`` reached through the ledger's own writes (no back door)."""
    assert ledger.create_order(KEY, "s1", kind="paid", status="received", payload=PAYLOAD, outbox=True) is None
    if status is OrderStatus.RECEIVED:
        return
    if status is OrderStatus.QUEUED:
        ledger.mark_queued(KEY)
        return
    path: dict[OrderStatus, list[OrderEvent]] = {
        OrderStatus.ISSUING: [],
        OrderStatus.ISSUED: [OrderEvent.ISSUED],
        OrderStatus.ACCEPTED: [OrderEvent.WAIT],
        OrderStatus.RETRYING: [OrderEvent.RETRY],
        OrderStatus.AMBIGUOUS: [OrderEvent.UNKNOWN],
        OrderStatus.FAILED: [OrderEvent.FAIL],
        OrderStatus.FAILED_AUTH: [OrderEvent.AUTH_FAILED],
        OrderStatus.BLOCKED: [OrderEvent.BLOCK],
    }
    if status in path:
        lease = lease_until if lease_until is not None else NOW + 60
        assert ledger.transition(KEY, OrderEvent.CLAIM, now=NOW, claim_id="c1", lease_until=lease).ok
        for event in path[status]:
            assert ledger.transition(KEY, event, now=NOW, claim_id="c1").ok
        return
    # Refund and red states: reached from a refund record (the red flow claims it, then ends).
    red_ends: dict[OrderStatus, OrderEvent] = {
        OrderStatus.REFUND_PENDING: OrderEvent.WAIT_BLUE,
        OrderStatus.REFUND_UNMATCHED: OrderEvent.UNMATCHED,
        OrderStatus.REFUND_NETTED: OrderEvent.NETTED,
        OrderStatus.REFUND_REFUSED: OrderEvent.REFUSE_REFUND,
        OrderStatus.REFUND_MANUAL: OrderEvent.MANUAL,
        OrderStatus.RED_FORM_APPLIED: OrderEvent.RED_APPLY,
        OrderStatus.RED_RETRYING: OrderEvent.RED_RETRY,
        OrderStatus.RED_AMBIGUOUS: OrderEvent.RED_UNKNOWN,
        OrderStatus.RED_ACCEPTED: OrderEvent.RED_WAIT,
        OrderStatus.RED_ISSUED: OrderEvent.RED_ISSUED,
        OrderStatus.RED_FAILED: OrderEvent.RED_FAIL,
        OrderStatus.RED_FORM_EXPIRED: OrderEvent.RED_EXPIRED,
    }
    if status is OrderStatus.RED_ISSUING or status in red_ends:
        lease = lease_until if lease_until is not None else NOW + 60
        assert ledger.transition(KEY, OrderEvent.RED_CLAIM, now=NOW, claim_id="c1", lease_until=lease).ok
        if status in red_ends:
            assert ledger.transition(KEY, red_ends[status], now=NOW, claim_id="c1").ok, status
        return
    if status is OrderStatus.CANCELLED:
        assert ledger.transition(KEY, OrderEvent.CANCEL, now=NOW).ok
        return
    # held / rejected are written by the intake directly.
    ledger.items.pop(KEY) if isinstance(ledger, FakeLedger) else _delete(ledger)
    assert ledger.create_order(KEY, "s1", kind="paid", status=status.value, payload=PAYLOAD, outbox=False) is None


def _delete(ledger: Any) -> None:
    from chalicelib.adapters import aws

    aws.client("dynamodb").delete_item(TableName=ledger.table, Key={"pk": {"S": f"order#{KEY}"}, "sk": {"S": "order"}})


def status_of(ledger: Any) -> OrderStatus:
    record = ledger.get_order(KEY)
    assert record is not None
    return record.status


ALL_PAIRS = [(s, e) for s in OrderStatus for e in OrderEvent]


@pytest.mark.parametrize(("status", "event"), ALL_PAIRS, ids=[f"{s.value}-{e.value}" for s, e in ALL_PAIRS])
def test_an_event_applies_exactly_where_the_table_allows_it(
    ledger: Any, status: OrderStatus, event: OrderEvent
) -> None:
    # An expired lease, so that the claim's lease condition never hides the table's verdict.
    put_at(ledger, status, lease_until=NOW - 1)
    before = ledger.get_order(KEY)
    done = ledger.transition(
        KEY,
        event,
        now=NOW,
        claim_id="c1",
        lease_until=NOW + 60 if event in LEASED else None,
        due_at=NOW + 30,
        payload=CORRECTED if event in REPLACES_PAYLOAD else None,
    )
    allowed = (status, event) in TRANSITIONS
    assert done.ok is allowed
    assert done.before is not None and done.before.status is status
    after = ledger.get_order(KEY)
    if not allowed:
        assert after == before
        return
    assert after.status is TRANSITIONS[(status, event)]
    assert after.payload == (CORRECTED if event in REPLACES_PAYLOAD else PAYLOAD)
    if event in RELEASING:
        assert "claim_id" not in after.fields and "lease_until" not in after.fields
    if event in LEASED:
        assert after.fields["claim_id"] == "c1" and after.fields["lease_until"] == int(NOW + 60)
    if after.status in TERMINAL and after.status not in DELIVERABLE:
        assert "due_at" not in after.fields
    else:  # an issued invoice stays due until its first delivery run (the sweeper's net)
        assert "due_at" in after.fields


@pytest.mark.parametrize("event", sorted(FENCED, key=lambda e: e.value))
def test_fenced_events_need_the_holders_claim_id(ledger: Any, event: OrderEvent) -> None:
    source = sorted(sources(event), key=lambda s: s.value)[0]
    put_at(ledger, source)
    refused = ledger.transition(KEY, event, now=NOW, claim_id="someone-else")
    assert not refused.ok
    assert status_of(ledger) is source


def test_a_live_lease_refuses_a_claim_and_an_expired_one_is_taken_over(ledger: Any) -> None:
    put_at(ledger, OrderStatus.QUEUED)
    first = ledger.transition(
        KEY, OrderEvent.CLAIM, now=NOW, claim_id="a", lease_until=NOW + 90, keep={"serial": "S1"}, add={"claims": 1}
    )
    assert first.ok and first.before.status is OrderStatus.QUEUED
    held = ledger.transition(KEY, OrderEvent.CLAIM, now=NOW + 10, claim_id="b", lease_until=NOW + 100)
    assert not held.ok and held.before.status is OrderStatus.ISSUING and held.before.fields["claim_id"] == "a"
    taken = ledger.transition(
        KEY,
        OrderEvent.CLAIM,
        now=NOW + 91,
        claim_id="b",
        lease_until=NOW + 200,
        keep={"serial": "S2"},
        add={"claims": 1},
    )
    assert taken.ok
    record = ledger.get_order(KEY)
    assert record.fields["serial"] == "S1"  # an order keeps its first serial
    assert record.fields["claims"] == 2
    assert not ledger.transition(KEY, OrderEvent.ISSUED, now=NOW + 92, claim_id="a").ok  # the old holder is fenced off
    assert ledger.transition(KEY, OrderEvent.ISSUED, now=NOW + 92, claim_id="b", fields={"invoice_number": "1" * 20}).ok
    assert ledger.get_order(KEY).fields["invoice_number"] == "1" * 20


def test_fields_set_remove_and_count(ledger: Any) -> None:
    put_at(ledger, OrderStatus.ISSUING)
    assert ledger.touch(KEY, "c1", fields={"pin": "p1", "last_error": "x"})
    assert not ledger.touch(KEY, "other", fields={"pin": "p2"})
    assert ledger.transition(
        KEY, OrderEvent.RETRY, now=NOW, claim_id="c1", fields={"last_error": None}, add={"retries": 1, "sends": 2}
    ).ok
    record = ledger.get_order(KEY)
    assert record.fields["pin"] == "p1" and "last_error" not in record.fields
    assert record.fields["retries"] == 1 and record.fields["sends"] == 2
    assert not ledger.touch(KEY, "c1", fields={"pin": "p3"})  # not issuing any more


def test_the_intake_writes(ledger: Any) -> None:
    assert ledger.create_order(KEY, "s1", kind="paid", status="received", payload=PAYLOAD, outbox=True) is None
    existing = ledger.create_order(KEY, "s1", kind="paid", status="received", payload={"other": 1}, outbox=True)
    assert existing is not None and existing.status is OrderStatus.RECEIVED and existing.payload == PAYLOAD
    assert existing.outbox_pending
    ledger.mark_queued(KEY)
    assert status_of(ledger) is OrderStatus.QUEUED
    ledger.mark_queued(KEY)  # a second time: nothing changes, nothing raises
    assert status_of(ledger) is OrderStatus.QUEUED
    other = OTHER
    assert (
        ledger.create_order(
            other, "s1", kind="paid", status="rejected", payload=PAYLOAD, outbox=False, violations=[{"code": "x"}]
        )
        is None
    )
    assert (
        ledger.create_order(other, "s1", kind="paid", status="received", payload=PAYLOAD, outbox=True) is None
    )  # replaces it
    assert ledger.get_order(other).status is OrderStatus.RECEIVED
    assert {r.order_key for r in ledger.orders_of_store("s1")} == {KEY, other}


def test_due_lists_overdue_records_and_postpone_is_conditional(ledger: Any) -> None:
    put_at(ledger, OrderStatus.RECEIVED)  # due 120 s after NOW (the outbox)
    assert ledger.due(NOW + 60, limit=10) == []
    [due] = ledger.due(NOW + 121, limit=10)
    assert due.order_key == KEY
    was = due.fields["due_at"]
    assert ledger.postpone(KEY, was=was, due_at=NOW + 500)
    assert not ledger.postpone(KEY, was=was, due_at=NOW + 600)  # a second sweeper loses
    assert ledger.due(NOW + 121, limit=10) == []
    ledger.mark_queued(KEY)  # queued: not due for anything
    assert ledger.due(NOW + 10_000, limit=10) == []


def test_a_correction_replaces_the_payload_drops_the_violations_and_records_the_fix(ledger: Any) -> None:
    violations = [{"field": "buyer.tax_id", "code": "tax_id_format", "message": "m", "message_en": "e"}]
    assert (
        ledger.create_order(
            KEY, "s1", kind="paid", status="rejected", payload=PAYLOAD, outbox=False, violations=violations
        )
        is None
    )
    with pytest.raises(ValueError, match="needs payload"):
        ledger.transition(KEY, OrderEvent.CORRECTED, now=NOW)
    with pytest.raises(ValueError, match="takes no payload"):
        ledger.transition(KEY, OrderEvent.ENQUEUED, now=NOW, payload=CORRECTED)
    done = ledger.transition(
        KEY, OrderEvent.CORRECTED, now=NOW, due_at=NOW + 120, payload=CORRECTED, fields={"fixed_by": "ops"}
    )
    assert done.ok and done.before.violations == violations and done.before.payload == PAYLOAD
    after = ledger.get_order(KEY)
    assert (after.status, after.payload, after.violations) == (OrderStatus.RECEIVED, CORRECTED, None)
    assert after.fields["fixed_by"] == "ops" and "due_at" in after.fields  # the outbox: the sweeper's too
    # corrected once: a second correction (or a platform's stale rejected retry) finds it moved on
    assert not ledger.transition(KEY, OrderEvent.CORRECTED, now=NOW, payload=PAYLOAD).ok
    assert ledger.create_order(KEY, "s1", kind="paid", status="rejected", payload=PAYLOAD, outbox=False) is not None


def test_orders_of_store_by_status_and_the_rejection_counter(ledger: Any) -> None:
    assert ledger.create_order(KEY, "s1", kind="paid", status="received", payload=PAYLOAD, outbox=True) is None
    assert ledger.create_order(OTHER, "s1", kind="paid", status="rejected", payload=PAYLOAD, outbox=False) is None
    assert [r.order_key for r in ledger.orders_of_store("s1", status="rejected")] == [OTHER]
    assert {r.order_key for r in ledger.orders_of_store("s1")} == {KEY, OTHER}
    import uuid

    store = f"s-{uuid.uuid4().hex[:8]}"  # counters are per store and window (the table outlives a test)
    assert [ledger.count_rejection(store, window=7, expires_at=NOW + 900) for _ in range(3)] == [1, 2, 3]
    assert ledger.count_rejection(store, window=8, expires_at=NOW + 1800) == 1
    assert ledger.orders_of_store(store) == []  # a counter is no order


def test_revise_is_a_compare_and_set_on_the_revision_within_statuses(ledger: Any) -> None:
    put_at(ledger, OrderStatus.ISSUED)
    issued = frozenset({OrderStatus.ISSUED})
    first = ledger.revise(KEY, revision=0, statuses=issued, now=NOW, fields={"refunded_total": "10.00"})
    assert first.ok and first.before.status is OrderStatus.ISSUED
    stale = ledger.revise(KEY, revision=0, statuses=issued, now=NOW, fields={"refunded_total": "99.00"})
    assert not stale.ok and stale.before.fields["refunded_total"] == "10.00"  # the loser sees the winner
    elsewhere = ledger.revise(KEY, revision=1, statuses=frozenset({OrderStatus.QUEUED}), now=NOW, fields={"x": "1"})
    assert not elsewhere.ok
    second = ledger.revise(
        KEY, revision=1, statuses=issued, now=NOW, fields={"refunded_total": "30.00"}, payload=CORRECTED
    )
    assert second.ok
    record = ledger.get_order(KEY)
    assert record.status is OrderStatus.ISSUED and record.fields["revision"] == 2
    assert record.fields["refunded_total"] == "30.00" and record.payload == CORRECTED and "x" not in record.fields
    assert not ledger.revise("s1:shopify:absent", revision=0, statuses=issued, now=NOW, fields={}).ok


def test_an_event_id_is_recorded_with_its_order_and_another_order_cannot_take_it(ledger: Any) -> None:
    """One write holds the order and its event id: the same id with another order writes nothing and
    names the holder; the same order again (same id, or a new one) is the existing record."""
    import uuid

    from chalicelib.domain.event_ids import EventIdHeld

    def fresh(prefix: str) -> str:  # the table outlives a test
        return f"{prefix}{uuid.uuid4().hex[:12]}"

    def create(key: str, event_id: str, status: str = "received") -> Any:
        return ledger.create_order(
            key, "s1", kind="paid", status=status, payload=PAYLOAD, outbox=status == "received", event_id=event_id
        )

    first, second, other = fresh("evt-"), fresh("evt-"), fresh("s1:shopify:")
    assert create(KEY, first) is None
    assert create(other, first) == EventIdHeld(first, KEY)
    assert ledger.get_order(other) is None  # nothing written
    assert create(KEY, first).order_key == KEY  # a re-delivery: the existing record
    assert create(KEY, second).order_key == KEY  # a re-signed one (a new id): the existing record …
    assert create(other, second) is None  # … and the refused write recorded no event item
    assert create(KEY, fresh("evt-")).order_key == KEY  # the existing order comes first, whatever the id

    rejected, third = fresh("s1:shopify:"), fresh("evt-")
    assert create(rejected, third, status="rejected") is None
    assert create(rejected, third) is None  # a rejected order is replaced, under its own event id
    assert ledger.get_order(rejected).status is OrderStatus.RECEIVED
    assert {r.order_key for r in ledger.orders_of_store("s1")} >= {KEY, other, rejected}
    assert all(r.order_key.startswith("s1:") for r in ledger.orders_of_store("s1", limit=500))  # no event item


def test_delivery_facts_are_written_on_an_issued_record_only_and_records_are_appended(ledger: Any) -> None:
    put_at(ledger, OrderStatus.ACCEPTED)
    assert not ledger.annotate(KEY, fields={"pdf_key": "k"})  # not issued: refused, nothing written
    assert "pdf_key" not in ledger.get_order(KEY).fields
    assert ledger.transition(KEY, OrderEvent.CLAIM, now=NOW + 120, claim_id="c2", lease_until=NOW + 180).ok
    assert ledger.transition(KEY, OrderEvent.ISSUED, now=NOW + 121, claim_id="c2", fields={"invoice_number": "1"}).ok
    first = {"channel": "email", "to": "zh***@example.com", "result": "failed"}
    assert ledger.annotate(KEY, fields={"pdf_key": "s1/2026/12/02/1.pdf", "pdf_sha256": "ab"}, deliveries=[first])
    assert ledger.annotate(KEY, fields={"pdf_sha256": None}, deliveries=[{**first, "result": "sent"}])
    record, history = ledger.delivery_view(KEY)
    assert record.status is OrderStatus.ISSUED and record.fields["pdf_key"] == "s1/2026/12/02/1.pdf"
    assert "pdf_sha256" not in record.fields and "deliveries" not in record.fields
    assert [h["result"] for h in history] == ["failed", "sent"] and history[0] == first
    with pytest.raises(ValueError, match="annotate cannot write"):
        ledger.annotate(KEY, fields={"status": "queued"})
    assert ledger.delivery_view(OTHER) is None and not ledger.annotate(OTHER, fields={"pdf_key": "k"})


def test_store_records_since_a_time_and_in_statuses(ledger: Any) -> None:
    """The batch reversal's, void's and the status sync's read: one store, a key range, a status filter."""
    from chalicelib.adapters.ledger_items import iso

    assert ledger.create_order(KEY, "s1", kind="paid", status="received", payload=PAYLOAD, outbox=True) is None
    assert ledger.create_order(OTHER, "s1", kind="paid", status="rejected", payload=PAYLOAD, outbox=False) is None
    since = iso(NOW - 1)
    assert {r.order_key for r in ledger.store_records("s1", since=since)} >= {KEY, OTHER}
    received = ledger.store_records("s1", since=since, statuses=frozenset({OrderStatus.RECEIVED}))
    assert KEY in {r.order_key for r in received} and OTHER not in {r.order_key for r in received}
    assert ledger.store_records("s1", since=iso(NOW + 1)) == []


def test_a_delivery_run_settles_what_the_sweeper_would_send_again(ledger: Any) -> None:
    """Issued with a due time (its delivery message may be lost): due until a delivery run's
    annotate settles it, on both ledgers."""
    put_at(ledger, OrderStatus.ISSUING)
    assert ledger.transition(KEY, OrderEvent.ISSUED, now=NOW, claim_id="c1", due_at=NOW + 900).ok
    # (the module's table may hold other tests' records: look for this one)
    assert KEY in [r.order_key for r in ledger.due(NOW + 901, limit=1000)]
    assert ledger.annotate(KEY, fields={"pdf_key": "s1/x.pdf"}, settle_due=True)
    assert KEY not in [r.order_key for r in ledger.due(NOW + 901, limit=1000)]
    after = ledger.get_order(KEY)
    assert after.fields["pdf_key"] == "s1/x.pdf" and "due_at" not in after.fields
