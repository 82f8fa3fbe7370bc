"""The issuing use case with fakes: an in-memory ledger with the real conditional semantics, a fake
provider and a scripted fake platform behind a fake transport (no AWS, no network, no sleeping).

The fake platform keeps invoices by serial, so "exactly one invoice per order" is asserted on the
platform's side, as the real sandbox does in ``tests/adapters/test_worker_sandbox.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest

from chalicelib.domain.errors import (
    AmbiguousTaxError,
    AuthTaxError,
    DuplicateTaxError,
    PermanentTaxError,
    RetryableTaxError,
    TaxError,
)
from chalicelib.domain.models import (
    InvoiceBuyer,
    InvoiceLine,
    InvoiceOrder,
    Party,
    Store,
)
from chalicelib.services.issue import (
    SERIAL_LENGTH,
    IssueInvoice,
    LeaseHeld,
    LeaseLost,
    StillPending,
    serial_for,
)
from chalicelib.taxapi.base import (
    Capabilities,
    Credentials,
    HttpRequest,
    HttpResponse,
    InvoiceResult,
    InvoiceStatus,
    IssueAccepted,
    Provider,
)

ROOT = Path(__file__).resolve().parents[2]
STORE = Store.model_validate(json.loads((ROOT / "examples/stores/demo-shanghai.json").read_text()))
ORDER_KEY = "demo-shanghai:SO-1"
T0 = datetime(2025, 3, 1, 8, 0, 0, tzinfo=UTC)
SECRET_VALUE = "sign-key-must-never-leak"


def make_order(order_key: str = ORDER_KEY) -> InvoiceOrder:
    return InvoiceOrder(
        order_key=order_key,
        store_id="demo-shanghai",
        order_id=order_key.split(":")[1],
        seller=Party(name=STORE.seller.name, tax_id=STORE.seller.tax_id),
        buyer=InvoiceBuyer(name="北京买方科技有限公司", tax_id="91110108MA01ABCD2X", type="company"),
        lines=(
            InvoiceLine(
                name="拿铁咖啡（大杯）",
                short_name="餐饮服务",
                tax_code="3070401000000000000",
                tax_rate=Decimal("0.06"),
                quantity=Decimal(1),
                unit_price=Decimal("30.18867925"),
                amount=Decimal("30.19"),
                tax=Decimal("1.81"),
                total=Decimal("32.00"),
            ),
        ),
        total_amount=Decimal("30.19"),
        total_tax=Decimal("1.81"),
        total=Decimal("32.00"),
        issuer="王会计",
    )


# --- fakes ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Record:
    order_key: str
    store_id: str
    status: str
    kind: str
    payload: dict[str, Any]


class FakeLedger:
    """The order records of ``chalicelib.adapters.ledger.Ledger`` with the same conditions, in memory."""

    CLAIMABLE = ("queued", "received", "retrying", "ambiguous", "accepted", "failed_auth", "issuing")

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def add(self, order_key: str = ORDER_KEY, *, kind: str = "paid", status: str = "queued") -> None:
        payload: dict[str, Any] = {"event": {}}
        if kind == "paid":
            payload["order"] = make_order(order_key).model_dump(mode="json")
        self.items[order_key] = {"store_id": "demo-shanghai", "status": status, "kind": kind, "payload": payload}

    def _record(self, key: str) -> Record:
        item = self.items[key]
        return Record(key, item["store_id"], item["status"], item["kind"], item["payload"])

    def _fields(self, key: str) -> dict[str, Any]:
        return {k: v for k, v in self.items[key].items() if k not in ("payload", "store_id", "kind")}

    def get_order(self, order_key: str) -> Record | None:
        return self._record(order_key) if order_key in self.items else None

    def claim_order(
        self, order_key: str, claim_id: str, *, serial: str, now: float, lease_seconds: float
    ) -> tuple[bool, Record | None, dict[str, Any]]:
        item = self.items.get(order_key)
        if item is None:
            return False, None, {}
        before, fields = self._record(order_key), dict(self._fields(order_key))
        lease = item.get("lease_until")
        if item["status"] not in self.CLAIMABLE or (lease is not None and not lease < int(now)):
            return False, before, fields
        item.update(
            prior_status=item["status"],
            status="issuing",
            claim_id=claim_id,
            lease_until=int(now + lease_seconds),
            claims=item.get("claims", 0) + 1,
        )
        item.setdefault("serial", serial)
        return True, before, fields

    def update_claimed(
        self,
        order_key: str,
        claim_id: str,
        *,
        status: str | None = None,
        fields: dict[str, str | int | None] | None = None,
        add_sends: bool = False,
        release: bool = False,
    ) -> bool:
        item = self.items[order_key]
        if item.get("claim_id") != claim_id:
            return False
        if status is not None:
            item["status"] = status
        for k, v in (fields or {}).items():
            if v is None:
                item.pop(k, None)
            else:
                item[k] = v
        if add_sends:
            item["sends"] = item.get("sends", 0) + 1
        if release:
            item.pop("claim_id", None)
            item.pop("lease_until", None)
        return True

    def mark_refund_pending(self, order_key: str) -> bool:
        item = self.items.get(order_key)
        if item is None or item["status"] not in ("queued", "received"):
            return False
        item["status"] = "refund_pending"
        return True

    def status(self, order_key: str = ORDER_KEY) -> str:
        return str(self.items[order_key]["status"])


class FakeProvider(Provider):
    """Requests carry JSON; replies carry ``{"ok": ...}`` or ``{"error": class, "code": ...}``."""

    name = "fake"
    capabilities = Capabilities()
    ERRORS: ClassVar[dict[str, type[TaxError]]] = {
        "retryable": RetryableTaxError,
        "ambiguous": AmbiguousTaxError,
        "duplicate": DuplicateTaxError,
        "permanent": PermanentTaxError,
        "auth": AuthTaxError,
    }

    def __init__(self, token: str = "t1") -> None:
        self.token = token

    def _request(self, op: str, **body: Any) -> HttpRequest:
        data = json.dumps({"op": op, "token": self.token, **body}).encode()
        return HttpRequest("POST", f"https://fake.test/{op}", (), data, idempotent=op == "query", operation=op)

    def _open(self, response: HttpResponse) -> Any:
        data = json.loads(response.body)
        if "error" in data:
            cls = self.ERRORS[data["error"]]
            if cls is PermanentTaxError:
                raise PermanentTaxError(
                    data.get("message", ""), provider_code=data.get("code"), field=data.get("field")
                )
            raise cls(data.get("message", ""), provider_code=data.get("code"))
        return data["ok"]

    def build_issue(self, order: InvoiceOrder, serial: str, now: datetime) -> HttpRequest:
        return self._request("issue", serial=serial, total=str(order.total))

    def parse_issue(self, request: HttpRequest, response: HttpResponse) -> IssueAccepted:
        ok = self._open(response)
        return IssueAccepted(serial=json.loads(request.body)["serial"], provider_ref=ok["ref"])

    def build_query(
        self, now: datetime, *, serials: tuple[str, ...] = (), order_nos: tuple[str, ...] = ()
    ) -> HttpRequest:
        return self._request("query", serials=list(serials))

    def parse_query(self, request: HttpRequest, response: HttpResponse) -> list[InvoiceResult]:
        return [
            InvoiceResult(
                serial=r["serial"],
                order_no=None,
                status=InvoiceStatus(r["status"]),
                invoice_number=r.get("number"),
                issued_at=T0 if r.get("number") else None,
                total_amount=Decimal(r["amount"]) if r.get("amount") else None,
                failure_reason=r.get("reason"),
                provider_status=r["status"],
            )
            for r in self._open(response)
        ]

    def _unused(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    build_red_form_apply = parse_red_form_apply = build_red_form_confirm = parse_red_form_confirm = _unused
    build_red_form_query = parse_red_form_query = build_issue_red = parse_issue_red = _unused
    build_void = parse_void = build_query_credit = parse_query_credit = _unused
    build_fetch_tax_codes = parse_fetch_tax_codes = _unused


@dataclass
class FakePlatform:
    """The tax platform behind the fake transport: invoices by serial, scripted faults per operation.

    ``faults[op]`` is a list consumed one per request of that op: ``"send_retryable"`` (refused before
    sending), ``"lost_reply"`` (acted on, then the reply is lost: Ambiguous), or a reply error class
    (``"retryable"``, ``"permanent"``, ``"auth"`` …) answered without acting.
    """

    pending_polls: int = 0  # how many queries answer "pending" before an invoice is issued
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: dict[str, list[str]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    issue_requests: int = 0
    valid_tokens: tuple[str, ...] = ("t1", "t2")

    def send(self, request: HttpRequest) -> HttpResponse:
        body = json.loads(request.body)
        op = body["op"]
        self.calls.append(op)
        fault = self.faults.get(op, []).pop(0) if self.faults.get(op) else None
        if fault == "send_retryable":
            raise RetryableTaxError(f"{op}: cannot connect (not sent)")
        if body["token"] not in self.valid_tokens:
            return self._reply({"error": "auth", "code": "070305"})
        if fault and fault != "lost_reply":
            return self._reply({"error": fault, "code": {"permanent": "E1001"}.get(fault, "X"), "field": "gmfnsrsbh"})
        if op == "issue":
            self.issue_requests += 1
            serial = body["serial"]
            if serial in self.invoices:
                reply = {"error": "duplicate", "code": "E4001"}
            else:
                self.invoices[serial] = {"serial": serial, "status": "pending", "polls": 0, "amount": body["total"]}
                reply = {"ok": {"ref": f"REF-{len(self.invoices)}"}}
        else:
            found = []
            for serial in body["serials"]:
                inv = self.invoices.get(serial)
                if inv is None:
                    continue
                if inv["status"] == "pending":
                    inv["polls"] += 1
                    if inv["polls"] > self.pending_polls:
                        inv.update(status="issued", number=f"2531{len(self.invoices):016d}")
                found.append({k: v for k, v in inv.items() if k != "polls"})
            reply = {"ok": found}
        if fault == "lost_reply":
            raise AmbiguousTaxError(f"{op}: no reply within 15s")
        return self._reply(reply)

    @staticmethod
    def _reply(data: dict[str, Any]) -> HttpResponse:
        return HttpResponse(200, (), json.dumps(data).encode())


class FakeProviders:
    def __init__(self) -> None:
        self.token = "t1"
        self.refreshes = 0

    def get(self, store: Store, credentials: Credentials) -> Provider:
        assert credentials.values["sign_key"] == SECRET_VALUE
        return FakeProvider(self.token)

    def refreshed(self, store: Store, credentials: Credentials, error: TaxError) -> Provider | None:
        if error.provider_code != "070305":
            return None
        self.refreshes += 1
        self.token = "t2"
        return FakeProvider(self.token)


class FakeStores:
    def get(self, store_id: str) -> Store:
        assert store_id == STORE.store_id
        return STORE


class FakeCredentials:
    def load(self, store: Store) -> Credentials:
        return Credentials({"app_id": "A", "sm4_key": "00" * 16, "sign_key": SECRET_VALUE})


@dataclass
class Recorder:
    alerts: list[tuple[str, str]] = field(default_factory=list)
    requeued: list[tuple[str, str, int, int]] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def publish(self, subject: str, message: str) -> None:
        self.alerts.append((subject, message))

    def requeue(self, order_key: str, kind: str, *, delay_seconds: int, poll: int) -> None:
        self.requeued.append((order_key, kind, delay_seconds, poll))

    def add_metric(self, name: str, unit: Any, value: float) -> None:
        self.metrics.append(name)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class World:
    ledger: FakeLedger
    platform: FakePlatform
    providers: FakeProviders
    recorder: Recorder
    clock: Clock
    use_case: IssueInvoice

    def worker(self) -> IssueInvoice:
        """Another worker (another container) on the same ledger and platform."""
        return make_use_case(self.ledger, self.platform, self.providers, self.recorder, self.clock)


def make_use_case(
    ledger: FakeLedger, platform: FakePlatform, providers: FakeProviders, recorder: Recorder, clock: Clock
) -> IssueInvoice:
    return IssueInvoice(
        ledger=ledger,
        stores=FakeStores(),
        credentials=FakeCredentials(),
        providers=providers,
        transport=platform,
        alerts=recorder,
        requeue=recorder,
        metrics=recorder,
        clock=clock,
        sleep=recorder.sleeps.append,
    )


@pytest.fixture()
def world() -> World:
    ledger, platform, providers, recorder, clock = FakeLedger(), FakePlatform(), FakeProviders(), Recorder(), Clock()
    ledger.add()
    return World(
        ledger, platform, providers, recorder, clock, make_use_case(ledger, platform, providers, recorder, clock)
    )


# --- tests ------------------------------------------------------------------------------------------
def test_serial_is_deterministic_and_short() -> None:
    assert serial_for(ORDER_KEY) == serial_for(ORDER_KEY)
    assert serial_for(ORDER_KEY) != serial_for(ORDER_KEY + "x")
    assert len(serial_for(ORDER_KEY)) == SERIAL_LENGTH <= 20
    assert serial_for("a" * 500).isalnum()


def test_happy_path_issues_once_and_records_the_invoice(world: World) -> None:
    outcome = world.use_case.issue(ORDER_KEY, "paid")

    assert outcome.status == "issued"
    item = world.ledger.items[ORDER_KEY]
    assert item["status"] == "issued"
    assert item["invoice_number"] == outcome.invoice_number and len(outcome.invoice_number or "") == 20
    assert item["serial"] == serial_for(ORDER_KEY)
    assert item["provider_ref"] == "REF-1" and item["issued_at"].startswith("2025-03-01")
    assert item["total_amount"] == "32.00"
    assert "claim_id" not in item and "lease_until" not in item
    assert world.platform.calls == ["issue", "query"]
    assert world.recorder.sleeps == [1.0]
    assert "InvoiceIssued" in world.recorder.metrics


def test_a_second_delivery_of_an_issued_order_does_nothing(world: World) -> None:
    world.use_case.issue(ORDER_KEY)
    calls = len(world.platform.calls)

    outcome = world.use_case.issue(ORDER_KEY)

    assert outcome.status == "skipped" and outcome.detail == "issued"
    assert len(world.platform.calls) == calls


def test_retryable_releases_the_claim_and_the_next_attempt_issues(world: World) -> None:
    world.platform.faults["issue"] = ["retryable"]

    with pytest.raises(RetryableTaxError):
        world.use_case.issue(ORDER_KEY)
    item = world.ledger.items[ORDER_KEY]
    assert item["status"] == "retrying"
    assert "claim_id" not in item and item["sends"] == 1

    outcome = world.use_case.issue(ORDER_KEY)  # SQS redelivery
    assert outcome.status == "issued"
    assert world.platform.calls == ["issue", "query", "issue", "query"]  # queried first, found nothing
    assert len(world.platform.invoices) == 1


def test_not_sent_retryable_also_retries(world: World) -> None:
    world.platform.faults["issue"] = ["send_retryable"]
    with pytest.raises(RetryableTaxError):
        world.use_case.issue(ORDER_KEY)
    assert world.use_case.issue(ORDER_KEY).status == "issued"
    assert world.platform.issue_requests == 1


def test_ambiguous_then_query_first_finds_the_invoice_without_a_second_issue(world: World) -> None:
    world.platform.faults["issue"] = ["lost_reply"]  # the platform accepted it, the reply was lost

    with pytest.raises(AmbiguousTaxError):
        world.use_case.issue(ORDER_KEY)
    assert world.ledger.status() == "ambiguous"
    assert world.platform.issue_requests == 1

    outcome = world.use_case.issue(ORDER_KEY)

    assert outcome.status == "issued"
    assert world.platform.issue_requests == 1  # no second issue request at all
    assert world.platform.calls == ["issue", "query"]
    assert world.ledger.items[ORDER_KEY]["invoice_number"] == outcome.invoice_number


def test_ambiguous_when_nothing_arrived_issues_again_with_the_same_serial(world: World) -> None:
    world.platform.faults["issue"] = ["send_retryable"]  # then treat the ledger as if ambiguous
    with pytest.raises(RetryableTaxError):
        world.use_case.issue(ORDER_KEY)
    world.ledger.items[ORDER_KEY]["status"] = "ambiguous"

    outcome = world.use_case.issue(ORDER_KEY)

    assert outcome.status == "issued"
    assert list(world.platform.invoices) == [serial_for(ORDER_KEY)]


def test_duplicate_fetches_the_existing_invoice_and_never_issues_again(world: World) -> None:
    serial = serial_for(ORDER_KEY)
    world.platform.invoices[serial] = {"serial": serial, "status": "issued", "polls": 0, "number": "2531" + "9" * 16}

    outcome = world.use_case.issue(ORDER_KEY)

    assert outcome.status == "issued" and outcome.invoice_number == "2531" + "9" * 16
    assert world.platform.calls == ["issue", "query"]
    assert len(world.platform.invoices) == 1
    assert "TaxDuplicate" in world.recorder.metrics


def test_duplicate_that_no_query_can_find_is_ambiguous(world: World) -> None:
    world.platform.faults["issue"] = ["duplicate"]
    with pytest.raises(AmbiguousTaxError):
        world.use_case.issue(ORDER_KEY)
    assert world.ledger.status() == "ambiguous"


def test_permanent_marks_failed_without_raising(world: World) -> None:
    world.platform.faults["issue"] = ["permanent"]

    outcome = world.use_case.issue(ORDER_KEY)

    assert outcome.status == "failed" and outcome.detail == "E1001"
    item = world.ledger.items[ORDER_KEY]
    assert item["status"] == "failed"
    assert item["failure_code"] == "E1001" and item["failure_field"] == "gmfnsrsbh"
    assert "claim_id" not in item
    assert "InvoiceFailed" in world.recorder.metrics
    assert world.use_case.issue(ORDER_KEY).status == "skipped"  # a redelivery does nothing


def test_platform_failure_after_acceptance_marks_failed(world: World) -> None:
    world.platform.pending_polls = 99

    def fail_on_query(request: HttpRequest) -> HttpResponse:
        if request.operation == "query":  # the platform gave up after accepting
            world.platform.invoices[serial_for(ORDER_KEY)].update(status="failed", reason="购方名称与税号不符")
        return FakePlatform.send(world.platform, request)

    world.use_case.transport = type("T", (), {"send": staticmethod(fail_on_query)})()
    outcome = world.use_case.issue(ORDER_KEY)
    assert outcome.status == "failed"
    assert world.ledger.items[ORDER_KEY]["failure_reason"] == "购方名称与税号不符"


def test_auth_marks_failed_auth_raises_and_alerts_once(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.platform.faults["issue"] = ["auth", "auth"]

    with pytest.raises(AuthTaxError):
        world.use_case.issue(ORDER_KEY)
    assert world.ledger.status() == "failed_auth"
    assert len(world.recorder.alerts) == 1
    subject, message = world.recorder.alerts[0]
    assert "demo-shanghai" in subject and "demo-shanghai" in message
    assert SECRET_VALUE not in message and SECRET_VALUE not in subject

    with pytest.raises(AuthTaxError):  # the redelivery fails again: no second alert
        world.use_case.issue(ORDER_KEY)
    assert len(world.recorder.alerts) == 1
    assert SECRET_VALUE not in capsys.readouterr().out  # nor in any log line

    assert world.use_case.issue(ORDER_KEY).status == "issued"  # credentials fixed, DLQ redriven


def test_token_error_refreshes_once_and_continues(world: World) -> None:
    world.platform.valid_tokens = ("t2",)

    outcome = world.use_case.issue(ORDER_KEY)

    assert outcome.status == "issued"
    assert world.providers.refreshes == 1
    assert world.platform.issue_requests == 1


def test_lease_held_by_another_worker_is_retryable_and_touches_nothing(world: World) -> None:
    claimed, _, _ = world.ledger.claim_order(
        ORDER_KEY, "other-worker", serial=serial_for(ORDER_KEY), now=T0.timestamp(), lease_seconds=90
    )
    assert claimed

    with pytest.raises(LeaseHeld):
        world.use_case.issue(ORDER_KEY)
    assert world.platform.calls == []
    assert world.ledger.items[ORDER_KEY]["claim_id"] == "other-worker"
    assert "LeaseHeld" in world.recorder.metrics


def test_crash_after_claim_expired_lease_is_taken_over(world: World) -> None:
    # A worker claimed and died before sending anything.
    world.ledger.claim_order(ORDER_KEY, "dead", serial=serial_for(ORDER_KEY), now=T0.timestamp(), lease_seconds=90)
    world.clock.advance(91)

    outcome = world.use_case.issue(ORDER_KEY)

    assert outcome.status == "issued"
    assert world.platform.calls == ["issue", "query"]  # nothing was sent, so no query first


def test_crash_after_sending_takeover_queries_first_and_finds_the_invoice(world: World) -> None:
    # A worker claimed, counted its issue request, sent it, and died before recording anything.
    dead = world.worker()
    dead.claim_ids = lambda: "dead"
    world.ledger.claim_order(ORDER_KEY, "dead", serial=serial_for(ORDER_KEY), now=T0.timestamp(), lease_seconds=90)
    world.ledger.update_claimed(ORDER_KEY, "dead", add_sends=True)
    world.platform.send(FakeProvider().build_issue(make_order(), serial_for(ORDER_KEY), T0))
    calls_before = len(world.platform.calls)

    with pytest.raises(LeaseHeld):  # the lease is still live: the redelivery waits
        world.use_case.issue(ORDER_KEY)
    world.clock.advance(91)
    outcome = world.use_case.issue(ORDER_KEY)

    assert outcome.status == "issued"
    assert world.platform.calls[calls_before:] == ["query"]
    assert world.platform.issue_requests == 1
    assert world.ledger.update_claimed(ORDER_KEY, "dead", status="failed") is False  # the dead worker is fenced


def test_lease_lost_mid_attempt_stops_writing(world: World) -> None:
    world.platform.pending_polls = 99

    def steal(_: float) -> None:  # while we sleep between polls, our lease expires and is taken over
        world.ledger.items[ORDER_KEY]["claim_id"] = "thief"

    world.use_case.sleep = steal
    with pytest.raises(LeaseLost):
        world.use_case.issue(ORDER_KEY)
    assert world.ledger.items[ORDER_KEY]["claim_id"] == "thief"
    assert world.ledger.status() == "accepted"


def test_still_pending_is_re_enqueued_with_a_delay(world: World) -> None:
    world.platform.pending_polls = 3  # two in-invocation polls are not enough

    outcome = world.use_case.issue(ORDER_KEY)

    assert outcome.status == "accepted"
    item = world.ledger.items[ORDER_KEY]
    assert item["status"] == "accepted" and "claim_id" not in item and item["polls"] == 1
    assert world.recorder.requeued == [(ORDER_KEY, "paid", 20, 1)]
    assert world.recorder.sleeps == [1.0, 2.0]

    outcome = world.use_case.issue(ORDER_KEY, "paid", poll=1)  # the delayed message comes back

    assert outcome.status == "issued"
    assert world.platform.issue_requests == 1
    assert world.platform.calls == ["issue", "query", "query", "query", "query"]  # 3 pending, then issued


def test_still_pending_after_every_re_enqueue_raises(world: World) -> None:
    world.platform.pending_polls = 10_000
    world.use_case.max_polls = 1
    assert world.use_case.issue(ORDER_KEY).status == "accepted"

    with pytest.raises(StillPending):
        world.use_case.issue(ORDER_KEY, poll=1)
    item = world.ledger.items[ORDER_KEY]
    assert item["status"] == "accepted" and "claim_id" not in item
    assert world.platform.issue_requests == 1


def test_query_errors_after_acceptance_keep_accepted(world: World) -> None:
    world.platform.pending_polls = 99
    world.platform.faults["query"] = ["retryable"]
    with pytest.raises(RetryableTaxError):
        world.use_case.issue(ORDER_KEY)
    assert world.ledger.status() == "accepted"


def test_refund_is_recorded_as_pending(world: World) -> None:
    key = "demo-shanghai:SO-1:refund:R1"
    world.ledger.add(key, kind="refunded")

    assert world.use_case.issue(key, "refunded").status == "refund_pending"
    assert world.ledger.status(key) == "refund_pending"
    assert world.use_case.issue(key, "refunded").status == "skipped"
    assert world.platform.calls == []


def test_held_and_rejected_orders_are_not_issued(world: World) -> None:
    for status in ("held", "rejected"):
        world.ledger.items[ORDER_KEY]["status"] = status
        assert world.use_case.issue(ORDER_KEY).status == "skipped"
    assert world.platform.calls == []


def test_unexpected_error_releases_the_claim(world: World) -> None:
    world.ledger.items[ORDER_KEY]["payload"] = {"event": {}}  # no order: a bug upstream

    with pytest.raises(KeyError):
        world.use_case.issue(ORDER_KEY)
    item = world.ledger.items[ORDER_KEY]
    assert item["status"] == "retrying" and "claim_id" not in item


def test_ambiguous_stays_ambiguous_until_a_query_answers(world: World) -> None:
    world.platform.faults["issue"] = ["lost_reply"]
    world.platform.faults["query"] = ["retryable"]
    with pytest.raises(AmbiguousTaxError):
        world.use_case.issue(ORDER_KEY)
    with pytest.raises(RetryableTaxError):  # the query-first of the redelivery fails too
        world.use_case.issue(ORDER_KEY)
    assert world.ledger.status() == "ambiguous"
    assert world.platform.issue_requests == 1

    assert world.use_case.issue(ORDER_KEY).status == "issued"
    assert world.platform.issue_requests == 1


def test_a_permanent_query_refusal_is_not_taken_as_not_found(world: World) -> None:
    world.platform.faults["issue"] = ["lost_reply"]
    world.platform.faults["query"] = ["permanent"]
    with pytest.raises(AmbiguousTaxError):
        world.use_case.issue(ORDER_KEY)
    with pytest.raises(AmbiguousTaxError):
        world.use_case.issue(ORDER_KEY)
    assert world.ledger.status() == "ambiguous"
    assert world.platform.issue_requests == 1
