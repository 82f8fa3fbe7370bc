"""Refund → red invoice end to end: the real worker, the ledger on moto and the HTTP tax sandbox, in
virtual time (``tests/support/virtual_queue.py``) — form confirmation and 72-hour expiry take seconds.

One stack, one sandbox and one set of stores for the module; each test uses its own order ids. The
assertions that matter are on the sandbox's side: the red invoices of an order add up to its refunds
and never to more than its blue invoice, whatever fault was injected at whichever red step.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from urllib.request import urlopen

import pytest

from chalicelib import config, wiring
from chalicelib.adapters.ledger import Ledger
from chalicelib.adapters.secrets import SecretStore
from chalicelib.adapters.stores import StoreRegistry
from chalicelib.domain.models import (
    BuyerType,
    EventKind,
    EventLine,
    InvoiceBuyer,
    InvoiceOrder,
    Party,
    PaymentEvent,
    RedFormExpiry,
    Store,
)
from chalicelib.domain.order_keys import order_key, serial_for
from chalicelib.domain.order_state import TERMINAL, OrderEvent, OrderStatus
from chalicelib.sandbox import server as sandbox_server
from tests.adapters.test_worker_sandbox import HANGZHOU, SECRETS, SHANGHAI, sandbox_config
from tests.support import orders
from tests.support.virtual_queue import VirtualClock, VirtualQueue, drive

D = Decimal
COMPANY = orders.company_buyer("91310115MA1K4ABC3C", "上海买方贸易有限公司")
#: Where a refund rests once the red flow is done with it (or waits for a person).
SETTLED = {s.value for s in TERMINAL} | {OrderStatus.RED_FORM_APPLIED.value}
#: The red steps of each protocol, by the sandbox's service name (``faults.only``).
STEPS = {
    "sta": {"apply": "QDHZQRDSQ", "form_query": "CXHZQRD", "issue": "QDFPSC", "result": "CXQDFPSCJG"},
    "nuonuo": {
        "apply": "saveInvoiceRedConfirm",
        "form_query": "queryInvoiceRedConfirm",
        "issue": "fastInvoiceRed",
        "result": "queryInvoiceResult",
    },
}
#: blue order key → what its refunds reversed by red invoices (the tests fill it; the last test checks).
REVERSED: dict[str, Decimal] = {}
FAULTS: dict[str, dict[str, object]] = {
    "busy": {"busy_pct": 100},
    "timeout_after_commit": {"timeout_after_commit_pct": 100, "timeout_mode": "close"},
    "garbled": {"garbled_pct": 100},
}


@pytest.fixture(scope="module")
def env(moto_url: str) -> Iterator[Any]:
    """Resources, stores, secrets and the sandbox, once for the module."""
    import boto3

    from chalicelib.adapters import aws
    from infra.local import bootstrap

    with pytest.MonkeyPatch.context() as mp, sandbox_server.start_sandbox(sandbox_config()) as sandbox:
        mp.setenv("AWS_ENDPOINT_URL", moto_url)
        session = boto3.session.Session(region_name="cn-north-1")
        aws.set_session(session)
        created = bootstrap(session, prefix=f"r{uuid.uuid4().hex[:8]}")
        for key, value in created.env.items():
            mp.setenv(key, value)
        mp.setenv("STA_ENDPOINT", sandbox.url)
        mp.setenv("NUONUO_ENDPOINT", f"{sandbox.url}/open/v1/services")
        mp.setenv("NUONUO_TOKEN_URL", f"{sandbox.url}/accessToken")
        mp.setenv("FIRST_CHECK_SECONDS", "0")
        config.settings.cache_clear()
        settings = config.settings()
        registry = StoreRegistry(settings.stores_table)
        for store in (SHANGHAI, HANGZHOU):
            registry.put(store)
        secrets = SecretStore()
        for name, value in SECRETS.items():
            if name.startswith("einvoice/"):
                secrets.put(name, json.dumps(value))
        wiring.reset()
        yield settings, sandbox, registry
        wiring.reset()
        config.settings.cache_clear()
        aws.set_session(None)


class Red:
    """The real worker, ledger and sandbox on a virtual clock, the queue simulated."""

    def __init__(self, env: Any) -> None:
        self.settings, self.sandbox, self.registry = env
        self.sandbox.state.faults.reset()
        self.clock = VirtualClock(self.sandbox.state.clock.now() + 10)
        self.queue = VirtualQueue(self.clock)
        self.ledger = Ledger(self.settings.ledger_table, clock=self.clock)
        wiring.reset()
        self.worker = wiring.make_worker(
            wiring.make_issue(order_ledger=self.ledger, clock=self.clock.utc), self.queue, clock=self.clock
        )
        self.tick()

    def tick(self) -> None:
        self.sandbox.state.clock.set(self.clock.now, freeze=True)

    def order(self, store: Store, *, buyer: InvoiceBuyer | None = None, platform: str = "standard") -> str:
        """A two-line blue order (106.00 + 53.00 = 159.00), recorded and queued."""
        order_id = f"SO-{uuid.uuid4().hex[:10]}"
        key = order_key(store.store_id, platform, order_id)
        item = store.default_item
        lines = [
            orders.line(a, str(item.tax_rate), code=item.tax_code, name=n, sku=sku, quantity="2")
            for a, n, sku in (("100.00", "服务费A", "A"), ("50.00", "服务费B", "B"))
        ]
        order = InvoiceOrder(
            **{
                **orders.order(lines).model_dump(),
                "order_key": key,
                "store_id": store.store_id,
                "order_id": order_id,
                "seller": Party(name=store.seller.name, tax_id=store.seller.tax_id),
                "buyer": buyer or InvoiceBuyer(name="个人", type=BuyerType.INDIVIDUAL),
                "issuer": store.invoice_defaults.issuer,
            }
        )
        payload = {"event": {}, "order": order.model_dump(mode="json")}
        assert (
            self.ledger.create_order(key, store.store_id, kind="paid", status="received", payload=payload, outbox=True)
            is None
        )
        self.queue.send(key, "paid")
        self.ledger.mark_queued(key)
        return key

    def refund(
        self, blue: str, amount: str, *, cumulative: bool = False, lines: tuple[EventLine, ...] = (), platform: str = ""
    ) -> str:
        parts = blue.split(":")
        store_id, plat, order_id = parts[0], platform or parts[1], parts[2]
        refund_id = f"RF-{uuid.uuid4().hex[:8]}"
        key = order_key(store_id, plat, order_id, refund_id)
        event = PaymentEvent(
            platform=plat,
            event_id=f"ev-{refund_id}",
            kind=EventKind.REFUNDED,
            order_id=order_id,
            amount=D("159.00"),
            refund_id=refund_id,
            refund_amount=D(amount),
            refund_cumulative=cumulative,
            lines=lines,
        )
        payload = {"event": event.model_dump(mode="json")}
        assert (
            self.ledger.create_order(key, store_id, kind="refunded", status="received", payload=payload, outbox=True)
            is None
        )
        self.queue.send(key, "refunded")
        self.ledger.mark_queued(key)
        return key

    def fields(self, key: str) -> dict[str, Any]:
        return self.ledger.issue_fields(key)

    def status(self, key: str) -> str:
        return str(self.fields(key).get("status"))

    def run(self, *keys: str, until: set[str] | None = None, horizon: float = 600) -> None:
        wanted = until or SETTLED | {"issued"}
        drive(
            self.worker,
            self.queue,
            self.clock,
            until=lambda: all(self.status(k) in wanted for k in keys),
            horizon=horizon,
            on_tick=self.tick,
        )

    def step(self, horizon: float = 1) -> None:
        """One worker pass over what is visible now (a fault is met once)."""
        drive(self.worker, self.queue, self.clock, until=lambda: False, horizon=horizon, on_tick=self.tick)

    # --- the sandbox's side: its admin view (GET /admin/invoices) -------------------------------------
    def admin(self, **query: str) -> list[dict[str, Any]]:
        url = f"{self.sandbox.url}/admin/invoices?{urlencode(query)}"
        with urlopen(url, timeout=10) as reply:
            invoices: list[dict[str, Any]] = json.loads(reply.read())["invoices"]
        return invoices

    def reds(self, blue: str) -> list[dict[str, Any]]:
        number = self.fields(blue)["invoice_number"]
        return [i for i in self.admin() if i.get("blue_number") == number and i["status"] == "issued"]

    def red_total(self, blue: str) -> Decimal:
        return -sum((D(i["total"]) for i in self.reds(blue)), D(0))

    def blue_total(self, blue: str) -> Decimal:
        [issued] = self.admin(order_key=blue)
        return D(issued["total"])

    def expect(self, blue: str, refunded: str) -> None:
        """What the refunds of ``blue`` reversed, for the module's last word on the admin view."""
        REVERSED[blue] = D(refunded)


@pytest.fixture()
def red(env: Any) -> Red:
    return Red(env)


STORES = pytest.mark.parametrize("store", [SHANGHAI, HANGZHOU], ids=["sta", "nuonuo"])


@STORES
def test_full_refund_is_one_red_invoice_mirroring_the_blue(red: Red, store: Store) -> None:
    blue = red.order(store)
    red.run(blue)
    key = red.refund(blue, "159.00")
    red.run(key)
    f = red.fields(key)
    assert f["status"] == "red_issued" and len(f["invoice_number"]) == 20
    [issued] = red.reds(blue)
    assert issued["number"] == f["invoice_number"] and red.red_total(blue) == D("159.00") == red.blue_total(blue)
    red.expect(blue, "159.00")
    b = red.fields(blue)
    assert b["refunded_total"] == "159.00" and f["invoice_number"] in b["red_invoices"]


@STORES
def test_repeated_partials_up_to_full_and_an_over_refund_refused(red: Red, store: Store) -> None:
    blue = red.order(store)
    red.run(blue)
    keys = [red.refund(blue, "53.00", lines=(EventLine(sku="B", total=D("53.00")),)), red.refund(blue, "10.00")]
    red.run(*keys)  # line B whole (named), then 10.00 spread over what is left (all on line A)
    named = red.refund(blue, "96.00", lines=(EventLine(sku="A", total=D("96.00")),))
    red.run(named)
    assert [red.status(k) for k in [*keys, named]] == ["red_issued"] * 3
    assert red.red_total(blue) == D("159.00") == red.blue_total(blue)
    over = red.refund(blue, "0.01")
    red.run(over)
    assert red.status(over) == "refund_refused" and "refund_exceeds_invoice" in red.fields(over)["refusal"]
    assert red.red_total(blue) == D("159.00")  # never more than the blue
    red.expect(blue, "159.00")
    assert red.fields(blue)["refunded_total"] == "159.00"


def test_alipay_refund_fee_is_cumulative(red: Red) -> None:
    blue = red.order(SHANGHAI, platform="alipay")
    red.run(blue)
    first = red.refund(blue, "30.00", cumulative=True)
    red.run(first)
    second = red.refund(blue, "50.00", cumulative=True)  # 50 refunded so far: this one is 20
    red.run(second)
    assert red.fields(second)["red_total"] == "20.00" and red.red_total(blue) == D("50.00")
    red.expect(blue, "50.00")


def test_refund_before_issue_reduces_the_blue_and_a_full_one_cancels_it(red: Red) -> None:
    blue = red.order(SHANGHAI)
    key = red.refund(blue, "53.00")  # the refund's message is first in the queue
    red.queue.messages = dict(reversed(list(red.queue.messages.items())))
    red.run(blue, key)
    assert red.status(key) == "refund_netted" and red.status(blue) == "issued"
    assert red.blue_total(blue) == D("106.00") and red.reds(blue) == []  # no blue-then-red churn
    rest = red.refund(blue, "106.00")  # after issue: the rest, against the invoice issued
    red.run(rest)
    assert red.status(rest) == "red_issued" and red.red_total(blue) == D("106.00")
    assert red.fields(blue)["refunded_total"] == "159.00" and red.fields(blue)["netted_total"] == "53.00"
    red.expect(blue, "106.00")
    gone = red.order(SHANGHAI)
    whole = red.refund(gone, "159.00")
    red.queue.messages = dict(reversed(list(red.queue.messages.items())))
    red.run(gone, whole, until=SETTLED | {"cancelled"})
    assert red.status(gone) == "cancelled" and red.sandbox.state.snapshot(serial=serial_for(gone)) == []


def test_refund_during_issue_waits_for_the_blue(red: Red) -> None:
    red.sandbox.state.faults.update({"timeout_after_commit_pct": 100, "only": ["QDFPSC"]})
    blue = red.order(SHANGHAI)
    red.step()
    assert red.status(blue) == "ambiguous"
    key = red.refund(blue, "10.00")
    waiting = red.worker.use_case.attempt(key, "refunded", deadline=red.clock.now + 60)  # the blue is in flight
    assert waiting.status is OrderStatus.REFUND_PENDING and waiting.retry_in
    red.sandbox.state.faults.reset()
    red.run(blue, key)
    assert red.status(key) == "red_issued" and red.red_total(blue) == D("10.00")
    red.expect(blue, "10.00")


def test_unknown_order_then_its_payment(red: Red) -> None:
    probe = red.order(SHANGHAI)  # only for its key shape: a refund whose order is not recorded yet
    ghost = probe.replace(probe.split(":")[2], f"LATE-{uuid.uuid4().hex[:6]}")
    red.run(probe)
    key = red.refund(ghost, "10.00")
    red.step()
    assert red.status(key) == "refund_pending"
    red.clock.advance(120)
    order = InvoiceOrder.model_validate(red.ledger.get_order(probe).payload["order"])  # type: ignore[union-attr]
    late = order.model_copy(update={"order_key": ghost, "order_id": ghost.split(":")[2]})
    red.ledger.create_order(
        ghost,
        SHANGHAI.store_id,
        kind="paid",
        status="received",
        payload={"event": {}, "order": late.model_dump(mode="json")},
        outbox=True,
    )
    red.queue.send(ghost, "paid")
    red.run(ghost, key, horizon=3600)
    # the held refund met its order before the blue was issued: netted into it, never issued alone
    assert red.status(key) == "refund_netted" and red.status(ghost) == "issued"
    assert red.blue_total(ghost) == D("149.00") and red.reds(ghost) == []


@STORES
def test_form_needing_the_buyers_confirmation_waits_by_delayed_message(red: Red, store: Store) -> None:
    blue = red.order(store, buyer=COMPANY)
    red.run(blue)
    key = red.refund(blue, "20.00")
    red.run(key, until={"red_form_applied"})
    f = red.fields(key)
    assert f["form_state"] == "02" and red.reds(blue) == []
    form = red.sandbox.state.find_form(form_id=f["form_id"]) or red.sandbox.state.find_form(serial=f["form_id"])
    assert form is not None
    red.clock.advance(7200)
    red.tick()
    red.sandbox.state.act_on_form(form, "Y")  # the buyer confirms on the tax platform
    red.run(key, until={"red_issued"}, horizon=7200)
    assert red.status(key) == "red_issued" and red.red_total(blue) == D("20.00")
    red.expect(blue, "20.00")


def test_a_form_near_expiry_alerts_and_an_expired_one_is_reapplied(red: Red) -> None:
    blue = red.order(SHANGHAI, buyer=COMPANY)
    red.run(blue)
    key = red.refund(blue, "20.00")
    red.run(key, until={"red_form_applied"})
    first = red.fields(key)["form_id"]
    red.run(key, until={"never"}, horizon=73 * 3600)  # nobody confirms
    f = red.fields(key)
    assert f["form_round"] == "2" and f["form_id"] != first and f["status"] == "red_form_applied"
    assert "form_alerted_at" in f and red.reds(blue) == []


def test_an_expired_form_goes_to_the_operator_when_the_store_says_so(red: Red) -> None:
    red.registry.put(SHANGHAI.model_copy(update={"red_form_expired": RedFormExpiry.OPERATOR}))
    try:
        red = Red((red.settings, red.sandbox, red.registry))
        blue = red.order(SHANGHAI, buyer=COMPANY)
        red.run(blue)
        key = red.refund(blue, "20.00")
        red.run(key, until={"red_form_expired"}, horizon=80 * 3600)
        assert red.status(key) == "red_form_expired" and red.reds(blue) == []
        # the operator sends it round again: a new form is applied, the buyer confirms, the red is issued
        now = red.clock.now
        assert red.ledger.transition(
            key, OrderEvent.RED_OPERATOR_RETRY, now=now, fields={"operator_retry_at": str(int(now))}
        ).ok
        red.queue.send(key, "refunded")
        red.run(key, until={"red_form_applied"})
        f = red.fields(key)
        assert f["form_round"] == "2" and f["status"] == "red_form_applied"
        form = red.sandbox.state.find_form(form_id=f["form_id"]) or red.sandbox.state.find_form(serial=f["form_id"])
        assert form is not None
        red.sandbox.state.act_on_form(form, "Y")
        red.run(key, until={"red_issued"}, horizon=6 * 3600)
        assert red.status(key) == "red_issued" and red.red_total(blue) == D("20.00")
        red.expect(blue, "20.00")
    finally:
        red.registry.put(SHANGHAI)
        wiring.reset()


CASES = [(p, step, fault) for p in ("sta", "nuonuo") for step in ("apply", "issue", "result") for fault in FAULTS]


@pytest.mark.parametrize(("protocol", "step", "fault"), CASES, ids=[f"{p}-{s}-{f}" for p, s, f in CASES])
def test_a_fault_at_a_red_step_never_issues_twice(red: Red, protocol: str, step: str, fault: str) -> None:
    store = SHANGHAI if protocol == "sta" else HANGZHOU
    blue = red.order(store)
    red.run(blue)
    key = red.refund(blue, "53.00")
    red.sandbox.state.faults.update({**FAULTS[fault], "only": [STEPS[protocol][step]]})
    red.step()
    met = red.status(key)
    red.sandbox.state.faults.reset()
    assert met == ("red_retrying" if fault == "busy" and step != "result" else "red_ambiguous")  # met
    red.run(key, horizon=3600)
    assert red.status(key) == "red_issued" and red.fields(key)["retries"] == 1
    assert len(red.reds(blue)) == 1 and red.red_total(blue) == D("53.00")
    assert red.fields(blue)["refunded_total"] == "53.00"
    red.expect(blue, "53.00")


def test_afterwards_the_admin_view_shows_red_totals_equal_to_refunds_never_above_the_blue(env: Any) -> None:
    red = Red(env)
    assert REVERSED, "run with the rest of the module"
    invoices = red.admin()
    blue_of = {i["number"]: i for i in invoices if not i.get("blue_number") and i["status"] == "issued"}
    reversed_by: dict[str, Decimal] = {}
    for i in invoices:
        if i.get("blue_number") and i["status"] == "issued":
            reversed_by[i["blue_number"]] = reversed_by.get(i["blue_number"], D(0)) - D(i["total"])
    for number, total in reversed_by.items():
        assert total <= D(blue_of[number]["total"]), number  # never more red than blue
    for blue, expected in REVERSED.items():
        assert reversed_by.get(red.fields(blue)["invoice_number"], D(0)) == expected, blue
