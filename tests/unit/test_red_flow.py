"""The red flow's decisions before any tax call, on fakes: the blue decides what a refund does.

The tax steps (form, confirmation, red invoice, faults) run against the HTTP sandbox in
``tests/adapters/test_red_sandbox.py``; here the in-memory ledger, the fake stores and a virtual clock.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from chalicelib.domain.models import EventKind, InvoiceOrder, PaymentEvent
from chalicelib.domain.order_keys import order_key
from chalicelib.domain.order_state import OrderEvent
from chalicelib.domain.order_state import OrderStatus as S
from chalicelib.services.exchange import Exchange
from chalicelib.services.issue import IssueInvoice
from chalicelib.services.outcomes import Outcome
from chalicelib.services.red import RedFlow
from chalicelib.services.red_ports import RedSettings
from tests.support.fake_platform import Rig, build

HOLD = 3600


@pytest.fixture()
def rig() -> Rig:
    return build()


def flow(rig: Rig) -> RedFlow:
    return RedFlow(
        ledger=rig.ledger,
        stores=rig.stores,
        credentials=rig.credentials,
        providers=rig.providers,
        exchange=Exchange(providers=rig.providers, transport=rig.transport, logger=rig.logger),
        alerts=rig.recorder,
        metrics=rig.recorder,
        logger=rig.logger,
        schedule=rig.schedule,
        first_check_seconds=rig.first_check_seconds,
        settings=RedSettings(hold_seconds=HOLD),
        clock=rig.clock.utc,
    )


def refund(rig: Rig, amount: str, refund_id: str = "R1", order_id: str = "1001") -> str:
    key = order_key("shop-a", "shopify", order_id, refund_id)
    event = PaymentEvent(
        platform="shopify",
        event_id=f"ev-{refund_id}",
        kind=EventKind.REFUNDED,
        order_id=order_id,
        amount=Decimal("32.00"),
        refund_id=refund_id,
        refund_amount=Decimal(amount),
    )
    payload = {"event": event.model_dump(mode="json")}
    assert (
        rig.ledger.create_order(key, "shop-a", kind="refunded", status="received", payload=payload, outbox=True) is None
    )
    rig.ledger.mark_queued(key)
    return key


def attempt(rig: Rig, red: RedFlow, key: str) -> Outcome:
    return red.attempt(key, deadline=rig.clock.now + 60)


def blue_order(rig: Rig, key: str) -> InvoiceOrder:
    record = rig.ledger.get_order(key)
    assert record is not None
    return InvoiceOrder.model_validate(record.payload["order"])


def test_a_refund_of_an_unknown_order_is_held_then_raised_never_dropped(rig: Rig) -> None:
    red, key = flow(rig), refund(rig, "10.00")
    first = attempt(rig, red, key)
    assert first.status is S.REFUND_PENDING and first.retry_in and first.retry_in <= HOLD
    assert "due_at" in rig.fields(key) and not rig.recorder.alerts
    rig.clock.advance(HOLD + 1)
    last = attempt(rig, red, key)
    assert last.status is S.REFUND_UNMATCHED and last.retry_in is None
    [(subject, text)] = rig.recorder.alerts
    assert key in subject and "red_operator_retry" in text
    assert rig.transport.log == []  # never issued alone


def test_the_unknown_order_arrives_within_the_hold_and_the_refund_goes_on(rig: Rig) -> None:
    red, key = flow(rig), refund(rig, "10.00")
    assert attempt(rig, red, key).status is S.REFUND_PENDING
    blue = rig.order("1001")  # the payment arrives (queued: nothing sent yet)
    rig.clock.advance(30)
    assert attempt(rig, red, key).status is S.REFUND_NETTED
    assert blue_order(rig, blue).total == Decimal("22.00")


@pytest.mark.parametrize("status", [S.ISSUING, S.AMBIGUOUS, S.ACCEPTED])
def test_a_refund_waits_while_the_blue_is_in_flight(rig: Rig, status: S) -> None:
    rig.order("1001", status=status)
    red, key = flow(rig), refund(rig, "10.00")
    out = attempt(rig, red, key)
    assert out.status is S.REFUND_PENDING and out.retry_in is not None and out.retry_in > 0
    assert rig.transport.log == [] and "claim_id" not in rig.fields(key)


@pytest.mark.parametrize("status", [S.QUEUED, S.RETRYING, S.FAILED_AUTH])
def test_a_partial_refund_before_issue_reduces_the_blue(rig: Rig, status: S) -> None:
    blue = rig.order("1001", status=status) if status is not S.QUEUED else rig.order("1001")
    red = flow(rig)
    first, second = refund(rig, "10.00"), refund(rig, "2.00", "R2")
    assert attempt(rig, red, first).status is S.REFUND_NETTED
    assert attempt(rig, red, second).status is S.REFUND_NETTED
    assert attempt(rig, red, first).detail == "nothing to do"  # a repeated message changes nothing
    fields = rig.fields(blue)
    assert fields["status"] == status.value and fields["refunded_total"] == "12.00" and fields["revision"] == 2
    order = blue_order(rig, blue)
    assert order.total == Decimal("20.00") and order.total_amount + order.total_tax == order.total
    assert rig.fields(first)["netted_into"] == blue and rig.transport.log == []


def test_a_full_refund_before_issue_cancels_the_blue(rig: Rig) -> None:
    blue = rig.order("1001")
    red = flow(rig)
    assert attempt(rig, red, refund(rig, "32.00")).status is S.REFUND_NETTED
    assert rig.status(blue) == "cancelled"
    # its queued message now finds nothing to issue
    use_case = rig.use_case
    assert use_case.attempt(blue, "paid", deadline=rig.clock.now + 60).detail == "nothing to do"
    # and a further refund has nothing left to take: refused and alerted
    assert attempt(rig, red, refund(rig, "1.00", "R2")).status is S.REFUND_REFUSED
    assert rig.recorder.alerts and rig.transport.log == []


@pytest.mark.parametrize("status", [S.HELD, S.FAILED, S.BLOCKED])
def test_a_refund_of_a_blue_an_operator_handles_goes_to_the_operator(rig: Rig, status: S) -> None:
    rig.order("1001", status=status)
    red, key = flow(rig), refund(rig, "10.00")
    assert attempt(rig, red, key).status is S.REFUND_MANUAL
    assert len(rig.recorder.alerts) == 1 and rig.transport.log == []


def test_an_over_refund_of_an_issued_blue_is_refused_with_a_bilingual_violation(rig: Rig) -> None:
    blue = rig.order("1001", status=S.ISSUED, invoice_number="2" * 20, issued_at="2026-01-01T10:00:00+08:00")
    red, key = flow(rig), refund(rig, "32.01")
    out = attempt(rig, red, key)
    assert out.status is S.REFUND_REFUSED
    fields = rig.fields(key)
    assert "累计红冲金额" in fields["last_error"] and "blue invoice total" in fields["last_error"]
    assert "refund_exceeds_invoice" in fields["refusal"]
    assert "refunded_total" not in rig.fields(blue)  # nothing reserved
    assert len(rig.recorder.alerts) == 1 and rig.transport.log == []


def test_a_live_claim_makes_a_second_attempt_wait(rig: Rig) -> None:
    rig.order("1001", status=S.ISSUING)
    red, key = flow(rig), refund(rig, "10.00")
    assert rig.ledger.transition(
        key, OrderEvent.RED_CLAIM, now=rig.clock.now, claim_id="other", lease_until=rig.clock.now + 90
    ).ok
    out = attempt(rig, red, key)
    assert out.status is S.RED_ISSUING and out.retry_in is not None and out.retry_in >= 90


def test_the_issuing_use_case_hands_refunds_to_the_red_flow(rig: Rig) -> None:
    red, key = flow(rig), refund(rig, "10.00")
    parts = rig.use_case
    use_case = IssueInvoice(
        ledger=rig.ledger,
        stores=rig.stores,
        credentials=rig.credentials,
        providers=rig.providers,
        exchange=parts.exchange,
        alerts=rig.recorder,
        metrics=rig.recorder,
        logger=rig.logger,
        schedule=rig.schedule,
        first_check_seconds=rig.first_check_seconds,
        clock=rig.clock.utc,
        red=red,
    )
    assert use_case.attempt(key, "refunded", deadline=rig.clock.now + 60).status is S.REFUND_PENDING


def test_two_refunds_racing_on_one_blue_never_spend_the_same_yuan(rig: Rig) -> None:
    blue = rig.order("1001")
    red, first, second = flow(rig), refund(rig, "25.00"), refund(rig, "12.00", "R2")
    real = rig.ledger.revise
    raced: list[Outcome] = []
    started: list[bool] = []

    def revise(order_key: str, **kw: Any) -> Any:
        if not started:  # the other refund's attempt writes the book between our read and our write
            started.append(True)
            raced.append(attempt(rig, red, second))
        return real(order_key, **kw)

    rig.ledger.revise = revise  # type: ignore[method-assign]
    out = attempt(rig, red, first)
    assert raced[0].status is S.REFUND_NETTED and out.status is S.REFUND_REFUSED  # 25 > 32.00 - 12: re-read, refused
    rig.ledger.revise = real  # type: ignore[method-assign]
    fields = rig.fields(blue)
    assert fields["refunded_total"] == "12.00" and fields["revision"] == 1
    assert blue_order(rig, blue).total == Decimal("20.00")


def test_an_operator_retry_restarts_the_hold(rig: Rig) -> None:
    red, key = flow(rig), refund(rig, "10.00")
    attempt(rig, red, key)
    rig.clock.advance(HOLD + 1)
    assert attempt(rig, red, key).status is S.REFUND_UNMATCHED
    now = rig.clock.now
    assert rig.ledger.transition(
        key, OrderEvent.RED_OPERATOR_RETRY, now=now, fields={"operator_retry_at": str(int(now))}
    ).ok
    assert attempt(rig, red, key).status is S.REFUND_PENDING  # held again, for another hold time


def test_alipay_refund_notifies_say_their_amount_is_cumulative() -> None:
    from chalicelib.webhooks import alipay
    from tests.support import platform_events as pe

    body, headers = pe.refunded("alipay", "T-1", "30.00", refund_id="77")
    event = alipay.verify(body, headers, pe.secret_values("alipay"), pe._now())
    assert event.kind is EventKind.REFUNDED and event.refund_cumulative and event.refund_amount == Decimal("30.00")
