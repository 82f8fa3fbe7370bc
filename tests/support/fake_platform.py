"""The issuing core built from fakes only, as ``chalicelib/wiring.py`` builds it from adapters.

- :class:`FakePlatform`: a tax platform that keeps invoices by serial (and remembers the order key of
  each), accepts an issue request (issuing at once, or after ``pending_queries`` queries), refuses a
  repeated serial as a duplicate, answers a query for several serials at once, and fails a request on
  script (:class:`Fault`, consumed one per request of an operation).
- :class:`FakeTransport`: routes a request to the platform of its endpoint, logs every request that
  the process tried to send, and runs one-shot hooks before delivering (a pause, a crash, the clock).
- :class:`FakeProvider` / :class:`FakeProviders`: a sans-IO provider speaking JSON to the platform,
  mapping replies to the error taxonomy as the real providers do (Duplicate from ``parse_issue``,
  E4004 from ``parse_query``, a garbled reply as Ambiguous), and the provider port (pin, one token
  refresh on a token error).
- :class:`FakeStores`, :class:`FakeCredentials`, :class:`Recorder` (alerts and metrics), and
  :class:`Script`: an exception raised at a named point (``credentials``, ``provider``,
  ``build_issue``, ``parse_issue``, ``build_query``, ``parse_query``, ``store``).
- :func:`build` → :class:`Rig`: ``IssueInvoice`` and ``BatchWorker`` over all of them, the in-memory
  ledger, the virtual queue and one virtual clock; the logger writes its JSON lines to a buffer.

No AWS, no network, no sleeping: time is :class:`~tests.support.virtual_queue.VirtualClock`.
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib.config import QUEUE_VISIBILITY_SECONDS, RETRY_SCHEDULE
from chalicelib.domain.errors import (
    AmbiguousTaxError,
    AuthTaxError,
    DuplicateTaxError,
    PermanentTaxError,
    RetryableTaxError,
    TaxError,
    UnknownStore,
)
from chalicelib.domain.models import InvoiceOrder, Party, Store
from chalicelib.domain.order_keys import order_key, serial_for
from chalicelib.domain.order_state import TERMINAL, OrderStatus
from chalicelib.domain.retry import RetrySchedule
from chalicelib.services.exchange import Exchange
from chalicelib.services.issue import IssueInvoice
from chalicelib.services.sweeper import sweep
from chalicelib.services.worker import BatchResult, BatchWorker
from chalicelib.taxapi.base import (
    Capabilities,
    Credentials,
    HttpRequest,
    HttpResponse,
    InvoiceResult,
    InvoiceStatus,
    IssueAccepted,
)
from chalicelib.wiring import MIN_ATTEMPT_SECONDS
from tests.support import orders
from tests.support.fake_ledger import FakeLedger
from tests.support.virtual_queue import VirtualClock, VirtualQueue, drive

ROOT = Path(__file__).resolve().parents[2]
#: A credentials value and a buyer tax id that must never reach a log line; tokens carry a mark too.
SECRET = "sign-key-NEVER-LOGGED-7f3a9c"
TOKEN_MARK = "tok-NEVER-LOGGED-"
BUYER_TAX_ID = "91110108MA01ABCD2X"
ENDPOINT_A = "https://a.tax.test"
ENDPOINT_B = "https://b.tax.test"
#: Provider codes of the fake protocol (token errors and not-found mirror Nuonuo / STA).
TOKEN_CODE = "070305"
NOT_FOUND_CODE = "E4004"
REFUSED_CODE = "E1001"
AUTH_CODE = "E0401"

_BASE = Store.model_validate(json.loads((ROOT / "examples/stores/demo-shanghai.json").read_text()))


def make_store(
    store_id: str = "shop-a", *, endpoint: str = ENDPOINT_A, first_check: int | None = None, seller: str | None = None
) -> Store:
    """A store on the fake platform at ``endpoint`` (``first_check``: its ``first_check_seconds`` option)."""
    options = dict(_BASE.provider.options)
    if first_check is not None:
        options["first_check_seconds"] = str(first_check)
    provider = _BASE.provider.model_copy(
        update={"endpoint": endpoint, "options": options, "credentials_secret": f"einvoice/{store_id}/sta"}
    )
    update: dict[str, Any] = {"store_id": store_id, "provider": provider}
    if seller is not None:
        update["seller"] = _BASE.seller.model_copy(update={"tax_id": seller})
    return _BASE.model_copy(update=update)


def make_order(store: Store, order_id: str, platform: str = "shopify") -> InvoiceOrder:
    """A one-line company order of ``store`` (``tests/support/orders.py`` builds it) with a full buyer tax id."""
    return orders.order(
        [orders.line("30.19")],
        order_id=order_id,
        order_key=order_key(store.store_id, platform, order_id),
        store_id=store.store_id,
        seller=Party(name=store.seller.name, tax_id=store.seller.tax_id),
        buyer=orders.company_buyer(BUYER_TAX_ID, "北京买方科技有限公司"),
    )


class Killed(BaseException):
    """The invocation dies (Lambda kills it): nothing after this point runs, no handler sees it."""


# --- the scripted points ----------------------------------------------------------------------------
class Script:
    """Exceptions to raise at named points, consumed one per pass."""

    def __init__(self) -> None:
        self.armed: dict[str, list[BaseException]] = {}

    def arm(self, point: str, *errors: BaseException) -> None:
        self.armed.setdefault(point, []).extend(errors)

    def fire(self, point: str) -> None:
        pending = self.armed.get(point)
        if pending:
            raise pending.pop(0)

    def clear(self) -> None:
        self.armed.clear()


# --- the platform -----------------------------------------------------------------------------------
class Fault(StrEnum):
    """What goes wrong with one request (platform side or transport side)."""

    BUSY = "busy"  # 503 "system busy": not acted on → Retryable
    UNREACHABLE = "unreachable"  # the transport cannot connect: nothing sent → Retryable
    TIMEOUT = "timeout"  # acted on, then no reply in time → Ambiguous
    GARBLED = "garbled"  # acted on, the reply is unreadable → Ambiguous (from parse)
    REFUSE = "refuse"  # a documented refusal (E1001, a field): not acted on → Permanent
    AUTH = "auth"  # credentials refused (E0401): not acted on → Auth, a refresh cannot help
    TOKEN = "token"  # access token expired (070305): not acted on → Auth, a refresh helps
    NOT_FOUND = "not_found"  # a query: "no such record" (E4004) whatever the platform holds
    BROKEN = "broken"  # the transport fails with an unexpected error before sending
    KILL = "kill"  # acted on, then the process dies before the reply


#: Faults after which the platform has acted on the request.
ACTED = frozenset({Fault.TIMEOUT, Fault.GARBLED, Fault.KILL})


@dataclass
class FakePlatform:
    """One tax platform: invoices by serial, scripted faults per operation (``issue`` / ``query``)."""

    endpoint: str
    number_prefix: str = "2531"
    #: Queries of a serial that answer "pending" before it is issued (0: issued at acceptance).
    pending_queries: int = 0
    #: When set, an accepted request ends ``failed`` with this reason instead of issued.
    gives_up: str | None = None
    #: While set, every request meets this fault (an outage: BUSY or UNREACHABLE).
    outage: Fault | None = None
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    #: Requests that reached the platform: (op, serials).
    received: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    duplicates: int = 0

    def fail_next(self, op: str, *faults: Fault) -> None:
        self.faults.setdefault(op, []).extend(faults)

    def next_fault(self, op: str) -> Fault | None:
        if self.outage is not None:
            return self.outage
        pending = self.faults.get(op)
        return pending.pop(0) if pending else None

    def invoices_of(self, key: str) -> list[dict[str, Any]]:
        return [inv for inv in self.invoices.values() if inv["order_key"] == key]

    def put_invoice(self, key: str, *, status: str = "issued") -> dict[str, Any]:
        """Set-up: the platform already holds an invoice for ``key`` (an earlier request acted on)."""
        return self._create(serial_for(key), key, status=status)

    def _create(self, serial: str, key: str, *, status: str | None = None) -> dict[str, Any]:
        n = len(self.invoices) + 1
        invoice = {
            "serial": serial,
            "order_key": key,
            "status": status or ("pending" if self.pending_queries else "issued"),
            "number": f"{self.number_prefix}{n:016d}",
            "ref": f"{self.number_prefix}-REF-{n}",
            "queries": 0,
        }
        self.invoices[serial] = invoice
        return invoice

    def _view(self, invoice: dict[str, Any]) -> dict[str, Any]:
        if invoice["status"] == "pending":
            invoice["queries"] += 1
            if invoice["queries"] > self.pending_queries:
                invoice["status"] = "issued"
        if invoice["status"] == "issued" and self.gives_up:
            invoice.update(status="failed", reason=self.gives_up)
        view = {k: invoice.get(k) for k in ("serial", "status", "reason")}
        if invoice["status"] == "issued":
            view["number"] = invoice["number"]
        return view

    def act(self, body: dict[str, Any]) -> dict[str, Any]:
        """The platform does what the request asks and returns the reply it would send."""
        if body["op"] == "issue":
            serial = body["serial"]
            if serial in self.invoices:
                self.duplicates += 1
                return {"error": "duplicate", "code": "E4001"}
            return {"ok": {"ref": self._create(serial, body["order_key"])["ref"]}}
        return {"ok": [self._view(self.invoices[s]) for s in body["serials"] if s in self.invoices]}

    def handle(self, request: HttpRequest) -> HttpResponse:
        body = json.loads(request.body)
        op = body["op"]
        fault = self.next_fault(op)
        if fault is Fault.UNREACHABLE:
            raise RetryableTaxError(f"{op}: connection refused (nothing sent)", code="tax_unreachable")
        if fault is Fault.BROKEN:
            raise ValueError(f"{op}: the transport broke before sending")
        self.received.append((op, tuple(body.get("serials") or [body.get("serial")])))
        refusals = {
            Fault.BUSY: (503, {"error": "busy", "code": "E9999"}),
            Fault.REFUSE: (200, {"error": "refused", "code": REFUSED_CODE, "field": "buyer.tax_id"}),
            Fault.AUTH: (200, {"error": "auth", "code": AUTH_CODE}),
            Fault.TOKEN: (200, {"error": "auth", "code": TOKEN_CODE}),
            Fault.NOT_FOUND: (200, {"error": "not_found", "code": NOT_FOUND_CODE}),
        }
        if fault in refusals:
            status, reply = refusals[fault]
            return _reply(reply, status)
        reply = self.act(body)
        if fault is Fault.TIMEOUT:
            raise AmbiguousTaxError(f"{op}: no reply within 15 s", code="tax_timeout")
        if fault is Fault.KILL:
            raise Killed(f"{op}: the invocation died waiting for the reply")
        if fault is Fault.GARBLED:
            return HttpResponse(200, (), b"<html>502 Bad Gateway</html>")
        return _reply(reply)


def _reply(data: dict[str, Any], status: int = 200) -> HttpResponse:
    return HttpResponse(status, (("content-type", "application/json"),), json.dumps(data).encode())


@dataclass
class Sent:
    endpoint: str
    op: str
    serials: tuple[str, ...]


class FakeTransport:
    """The TransportPort: the platform of the request's endpoint, one-shot hooks before delivery."""

    def __init__(self, platforms: list[FakePlatform]) -> None:
        self.platforms = {p.endpoint: p for p in platforms}
        self.log: list[Sent] = []
        self.hooks: dict[str, list[Callable[[HttpRequest], None]]] = {}
        #: Called before every request (not consumed), e.g. to let virtual time pass.
        self.every: Callable[[HttpRequest], None] | None = None

    def before(self, op: str, hook: Callable[[HttpRequest], None]) -> None:
        self.hooks.setdefault(op, []).append(hook)

    def send(self, request: HttpRequest) -> HttpResponse:
        endpoint, op = request.url.rsplit("/", 1)
        body = json.loads(request.body)
        self.log.append(Sent(endpoint, op, tuple(body.get("serials") or [body.get("serial")])))
        if self.every is not None:
            self.every(request)
        pending = self.hooks.get(op)
        if pending:
            pending.pop(0)(request)
        return self.platforms[endpoint].handle(request)

    def ops(self, serial: str | None = None, endpoint: str | None = None) -> list[str]:
        """The operations the process tried to send (for one serial, to one endpoint)."""
        return [
            s.op
            for s in self.log
            if (serial is None or serial in s.serials) and (endpoint is None or s.endpoint == endpoint)
        ]


# --- the provider -----------------------------------------------------------------------------------
class FakeProvider:
    """JSON over the fake transport; replies mapped to the taxonomy as the real providers map theirs."""

    name = "fake"

    def __init__(self, endpoint: str, token: str, script: Script, capabilities: Capabilities) -> None:
        self.endpoint = endpoint
        self.token = token
        self.script = script
        self.capabilities = capabilities

    def _request(self, op: str, **body: Any) -> HttpRequest:
        data = json.dumps({"op": op, "token": self.token, **body}).encode()
        headers = (("authorization", f"Bearer {self.token}"),)
        return HttpRequest("POST", f"{self.endpoint}/{op}", headers, data, idempotent=op == "query", operation=op)

    def _open(self, response: HttpResponse) -> Any:
        try:
            data = json.loads(response.body)
        except ValueError:
            raise AmbiguousTaxError("unreadable reply", code="tax_garbled") from None
        error, code = data.get("error"), data.get("code")
        if error is None:
            return data["ok"]
        if error == "busy" or response.status >= 500:
            raise RetryableTaxError("system busy", provider_code=code)
        if error == "duplicate":
            raise DuplicateTaxError("serial already used", provider_code=code)
        if error == "auth":
            raise AuthTaxError("credentials or token refused", provider_code=code)
        raise PermanentTaxError(f"refused: {code}", provider_code=code, field=data.get("field"))

    def build_issue(self, order: InvoiceOrder, serial: str, now: datetime) -> HttpRequest:
        self.script.fire("build_issue")
        return self._request("issue", serial=serial, order_key=order.order_key, total=str(order.total))

    def parse_issue(self, request: HttpRequest, response: HttpResponse) -> IssueAccepted:
        self.script.fire("parse_issue")
        ok = self._open(response)
        return IssueAccepted(serial=json.loads(request.body)["serial"], provider_ref=ok["ref"])

    def build_query(
        self, now: datetime, *, serials: tuple[str, ...] = (), order_nos: tuple[str, ...] = ()
    ) -> HttpRequest:
        self.script.fire("build_query")
        return self._request("query", serials=list(serials))

    def parse_query(self, request: HttpRequest, response: HttpResponse) -> list[InvoiceResult]:
        self.script.fire("parse_query")
        return [
            InvoiceResult(
                serial=r["serial"],
                order_no=None,
                status=InvoiceStatus(r["status"]),
                invoice_number=r.get("number"),
                total_amount=Decimal("30.19") if r.get("number") else None,
                total_tax=Decimal("1.81") if r.get("number") else None,
                pdf_url=f"https://files.tax.test/{r['number']}.pdf" if r.get("number") else None,
                failure_reason=r.get("reason"),
                provider_status=r["status"],
            )
            for r in self._open(response)
        ]


class FakeProviders:
    """The ProviderPort: a provider per store endpoint, a fresh token on a token error."""

    def __init__(self, script: Script, capabilities: Capabilities | None = None) -> None:
        self.script = script
        self.capabilities = capabilities or Capabilities()
        self.tokens = itertools.count(1)
        self.refreshes = 0

    def _provider(self, store: Store) -> FakeProvider:
        endpoint = store.provider.endpoint or ENDPOINT_A
        return FakeProvider(endpoint, f"{TOKEN_MARK}{next(self.tokens)}", self.script, self.capabilities)

    def get(self, store: Store, credentials: Credentials) -> FakeProvider:
        self.script.fire("provider")
        assert credentials.values["sign_key"] == SECRET
        return self._provider(store)

    def refreshed(self, store: Store, credentials: Credentials, error: TaxError) -> FakeProvider | None:
        if error.provider_code != TOKEN_CODE:
            return None
        self.refreshes += 1
        return self._provider(store)

    def pin(self, store: Store) -> str:
        return f"fake|{store.provider.endpoint}|{store.seller.tax_id}"

    def observe_tokens(self, observer: Any) -> None:
        """The fake platform fetches no token over HTTP: nothing to observe."""


class FakeStores:
    def __init__(self, script: Script, stores: list[Store]) -> None:
        self.script = script
        self.stores = {s.store_id: s for s in stores}

    def put(self, store: Store) -> None:
        self.stores[store.store_id] = store

    def get(self, store_id: str) -> Store:
        self.script.fire("store")
        try:
            return self.stores[store_id]
        except KeyError:
            raise UnknownStore(f"no store {store_id}") from None


class FakeCredentials:
    def __init__(self, script: Script) -> None:
        self.script = script

    def load(self, store: Store) -> Credentials:
        self.script.fire("credentials")
        return Credentials({"app_id": "APP-1", "sm4_key": "00" * 16, "sign_key": SECRET})


@dataclass
class Recorder:
    """AlertPort and MetricsPort."""

    alerts: list[tuple[str, str]] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)

    def publish(self, subject: str, message: str) -> None:
        self.alerts.append((subject, message))

    def add_metric(self, name: str, unit: str, value: float) -> None:
        self.metrics.append(name)


class RecordingQueue(VirtualQueue):
    """The virtual issue queue, also recording each message's delay: (body, delay seconds)."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(clock)
        self.delays: list[tuple[dict[str, Any], int]] = []

    def send(self, order_key: str, kind: str, *, delay_seconds: int = 0) -> str:
        self.delays.append(({"order_key": order_key, "kind": kind}, delay_seconds))
        return super().send(order_key, kind, delay_seconds=delay_seconds)

    def send_check(
        self, store_id: str, pin: str, entries: list[dict[str, str]], *, delay_seconds: int, round_no: int = 1
    ) -> str:
        self.delays.append(({"check": entries, "store_id": store_id, "pin": pin}, delay_seconds))
        return super().send_check(store_id, pin, entries, delay_seconds=delay_seconds, round_no=round_no)

    def checks(self) -> list[dict[str, Any]]:
        return [m for m in self.sent if "check" in m]


# --- the rig ----------------------------------------------------------------------------------------
_loggers = itertools.count(1)


@dataclass
class Rig:
    clock: VirtualClock
    script: Script
    a: FakePlatform
    b: FakePlatform
    transport: FakeTransport
    stores: FakeStores
    credentials: FakeCredentials
    providers: FakeProviders
    recorder: Recorder
    ledger: FakeLedger
    queue: RecordingQueue
    logs: io.StringIO
    logger: Logger
    schedule: RetrySchedule
    default_first_check: int
    use_case: IssueInvoice = field(init=False)
    worker: BatchWorker = field(init=False)
    visibility: int = QUEUE_VISIBILITY_SECONDS
    min_attempt: float = MIN_ATTEMPT_SECONDS
    _containers: Any = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.use_case = self.container()
        self.worker = BatchWorker(
            use_case=self.use_case,
            queue=self.queue,
            schedule=self.schedule,
            first_check_seconds=lambda store_id: self.first_check_seconds(self.stores.get(store_id)),
            visibility_seconds=self.visibility,
            min_attempt_seconds=self.min_attempt,
            logger=self.logger,
            clock=self.clock,
        )

    def first_check_seconds(self, store: Store) -> int:
        """As ``wiring.first_check_seconds``: the store's option, else the stage default."""
        option = store.provider.options.get("first_check_seconds")
        return int(option) if option not in (None, "") else self.default_first_check

    def container(self) -> IssueInvoice:
        """A use case of its own (another Lambda container) on the same ledger, platforms and clock."""
        n = next(self._containers)
        claims = itertools.count(1)
        return IssueInvoice(
            ledger=self.ledger,
            stores=self.stores,
            credentials=self.credentials,
            providers=self.providers,
            exchange=Exchange(providers=self.providers, transport=self.transport, logger=self.logger),
            alerts=self.recorder,
            metrics=self.recorder,
            logger=self.logger,
            schedule=self.schedule,
            first_check_seconds=self.first_check_seconds,
            clock=self.clock.utc,
            claim_ids=lambda: f"w{n}-c{next(claims)}",
        )

    # --- orders -------------------------------------------------------------------------------------
    def order(
        self, order_id: str = "1001", *, store: str = "shop-a", status: OrderStatus = OrderStatus.QUEUED, **fields: Any
    ) -> str:
        """A paid order record: ``queued`` through the ledger's intake writes, any other status set up
        with ``fields`` as an earlier history would have left them (serial and pin included)."""
        shop = self.stores.stores[store]
        order = make_order(shop, order_id)
        key = order.order_key
        payload = {"event": {}, "order": order.model_dump(mode="json")}
        if status is OrderStatus.QUEUED and not fields:
            assert (
                self.ledger.create_order(key, store, kind="paid", status="received", payload=payload, outbox=True)
                is None
            )
            self.ledger.mark_queued(key)
            return key
        history = {"serial": serial_for(key), "pin": self.providers.pin(shop), **fields}
        self.ledger.put(key, store_id=store, status=status, payload=payload, **history)
        return key

    def refund(self, order_id: str = "1001", refund_id: str = "R1", *, status: str = "queued") -> str:
        key = order_key("shop-a", "shopify", order_id, refund_id)
        assert (
            self.ledger.create_order(
                key, "shop-a", kind="refunded", status="received", payload={"event": {}}, outbox=True
            )
            is None
        )
        if status == "queued":
            self.ledger.mark_queued(key)
        return key

    def move(self, store: str = "shop-a", endpoint: str = ENDPOINT_B) -> None:
        """The store's tax configuration changes (another platform)."""
        old = self.stores.stores[store]
        self.stores.put(old.model_copy(update={"provider": old.provider.model_copy(update={"endpoint": endpoint})}))

    def pin(self, store: str = "shop-a") -> str:
        return self.providers.pin(self.stores.stores[store])

    def fields(self, key: str) -> dict[str, Any]:
        return self.ledger.issue_fields(key)

    def status(self, key: str) -> str:
        return str(self.fields(key)["status"])

    def invoices(self, key: str) -> list[dict[str, Any]]:
        return self.a.invoices_of(key) + self.b.invoices_of(key)

    def clear_faults(self) -> None:
        self.script.clear()
        for p in (self.a, self.b):
            p.faults.clear()
            p.outage = None

    def expire_lease(self, key: str) -> None:
        """Let virtual time pass until the record's lease is over (as the ledger compares it)."""
        lease = int(self.fields(key)["lease_until"])
        self.clock.now = max(self.clock.now, lease + 1.0)

    # --- the queue and the worker --------------------------------------------------------------------
    def handle(self, remaining_ms: int = 60_000, limit: int = 5) -> tuple[BatchResult, list[dict[str, Any]]]:
        """One invocation, as Lambda's event source makes it: receive, handle, delete what succeeded."""
        batch = self.queue.receive(limit)
        result = self.worker.handle(batch, lambda: remaining_ms)
        failed = set(result.failed)
        self.queue.delete([r["messageId"] for r in batch if r["messageId"] not in failed])
        return result, batch

    def settle(
        self,
        *keys: str,
        horizon: float = 6 * 3600,
        sweeper: bool = False,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        """Drive the queue until every order is terminal; ``sweeper``: the minutely sweeper runs too
        (and wakes an empty queue up, as the schedule does); ``on_tick`` after every step."""
        end = self.clock.now + horizon
        next_sweep = [self.clock.now + 60]

        def tick() -> None:
            if on_tick is not None:
                on_tick()
            if sweeper and self.clock.now >= next_sweep[0]:
                sweep(self.ledger, self.queue, now=self.clock.now, grace_seconds=120)
                next_sweep[0] = self.clock.now + 60

        def done() -> bool:
            return all(OrderStatus(self.status(k)) in TERMINAL for k in keys)

        while not done() and self.clock.now < end:
            drive(self.worker, self.queue, self.clock, until=done, horizon=end - self.clock.now, on_tick=tick)
            if not sweeper:
                return
            self.clock.now = max(self.clock.now, next_sweep[0])
            tick()

    # --- what the platform holds ---------------------------------------------------------------------
    def assert_exactly_once(self, *keys: str) -> None:
        """At most one invoice per order over both platforms; exactly one, the record's, when issued."""
        for key in keys:
            held = self.invoices(key)
            assert len(held) <= 1, (key, held)
            assert all(inv["serial"] == serial_for(key) for inv in held)
            f = self.fields(key)
            if f["status"] == OrderStatus.ISSUED:
                assert len(held) == 1, (key, f)
                assert held[0]["status"] == "issued" and f["invoice_number"] == held[0]["number"]

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.logs.getvalue().splitlines() if line.strip()]


def build(
    *,
    first_check: int = 3,
    schedule: RetrySchedule = RETRY_SCHEDULE,
    visibility: int = QUEUE_VISIBILITY_SECONDS,
    min_attempt: float = MIN_ATTEMPT_SECONDS,
    capabilities: Capabilities | None = None,
    stores: list[Store] | None = None,
) -> Rig:
    clock = VirtualClock()
    script = Script()
    a, b = FakePlatform(ENDPOINT_A, "2531"), FakePlatform(ENDPOINT_B, "4401")
    logs = io.StringIO()
    return Rig(
        clock=clock,
        script=script,
        a=a,
        b=b,
        transport=FakeTransport([a, b]),
        stores=FakeStores(script, stores or [make_store("shop-a"), make_store("shop-b", seller="91310115MA1K4ABC3C")]),
        credentials=FakeCredentials(script),
        providers=FakeProviders(script, capabilities),
        recorder=Recorder(),
        ledger=FakeLedger(clock=clock),
        queue=RecordingQueue(clock),
        logs=logs,
        logger=Logger(service=f"einvoice-fast-{next(_loggers)}", level="DEBUG", stream=logs),
        schedule=schedule,
        default_first_check=first_check,
        visibility=visibility,
        min_attempt=min_attempt,
    )
