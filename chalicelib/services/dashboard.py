"""Headquarters' figures: counted as invoices change (:class:`InvoiceCounter`), read per store and
for the chain (:class:`Dashboard`). Ports only; no table scan anywhere.

Counting costs one DynamoDB UpdateItem (an ADD on the store's day item) per issued, rejected, failed
or blocked order, made after the ledger's own write succeeded. It never raises: a failed count is
logged and the invoice goes on (the ledger stays the truth; the dashboard may then be one short).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from aws_lambda_powertools import Logger

from chalicelib.domain import counters as c
from chalicelib.domain.counters import CounterDelta, DayCounts
from chalicelib.domain.models import Violation
from chalicelib.domain.order_keys import store_of
from chalicelib.domain.order_state import OrderStatus
from chalicelib.services.auth import NotVisible, Operator
from chalicelib.services.ports import OrderRecord

#: Statuses that make an order worth an operator's look on the dashboard (its "exception" list).
OPEN_STATUSES = frozenset({OrderStatus.REJECTED, OrderStatus.FAILED, OrderStatus.FAILED_AUTH, OrderStatus.BLOCKED})
MAX_DAYS = 92
MAX_OPEN_ITEMS = 50
#: SKU rows shown: the scope's chart and table, and each store's own table on the chain's page.
TOP_SKUS = 15
TOP_SKUS_PER_STORE = 5


class CounterPort(Protocol):
    def add(self, delta: CounterDelta) -> None:
        """One atomic increment of the store's day item."""
        ...

    def days(self, store_id: str, first: str, last: str) -> list[DayCounts]:
        """The store's day items from ``first`` to ``last`` (``YYYY-MM-DD``, inclusive); absent days omitted."""
        ...


class OrderReadPort(Protocol):
    def get_many(self, order_keys: Sequence[str]) -> list[OrderRecord]:
        """The records that exist among ``order_keys`` (one BatchGetItem per 100 keys)."""
        ...

    def overdue(self, now: float, *, limit: int) -> list[OrderRecord]:
        """Records whose next step is overdue (the sweeper's index, not a scan)."""
        ...


class StoreListPort(Protocol):
    def names(self) -> dict[str, str]:
        """store id → name, every store."""
        ...


class InvoiceCounterPort(Protocol):
    """What the settler and the intake call as an order reaches an outcome (never raises)."""

    def issued(
        self, record: OrderRecord | None, order_key: str, issued_at: datetime, total: Decimal | None
    ) -> None: ...
    def exception(self, outcome: str, order_key: str, at: datetime) -> None: ...


class InvoiceCounter:
    def __init__(self, port: CounterPort, logger: Logger) -> None:
        self.port = port
        self.log = logger

    def issued(self, record: OrderRecord | None, order_key: str, issued_at: datetime, total: Decimal | None) -> None:
        payload = record.payload if record is not None else {}
        created = record.created_at if record is not None else ""
        self._add(lambda: c.issued_delta(store_of(order_key), payload, created, issued_at, total), order_key)

    def exception(self, outcome: str, order_key: str, at: datetime) -> None:
        self._add(lambda: c.exception_delta(store_of(order_key), outcome, order_key, at), order_key)

    def _add(self, make: Callable[[], CounterDelta], order_key: str) -> None:
        try:
            self.port.add(make())
        except Exception:
            self.log.warning("dashboard counter not updated", extra={"order_key": order_key}, exc_info=True)


class RejectionPort(Protocol):
    def rejected(self, store_id: str, order_key: str, violations: Sequence[Violation]) -> None: ...


class CountingRejections:
    """The intake's rejection port, also counted on the dashboard (wraps the burst alert)."""

    def __init__(self, inner: RejectionPort, counter: InvoiceCounterPort, *, clock: Callable[[], datetime]) -> None:
        self.inner = inner
        self.counter = counter
        self.clock = clock

    def rejected(self, store_id: str, order_key: str, violations: Sequence[Violation]) -> None:
        self.inner.rejected(store_id, order_key, violations)
        self.counter.exception("rejected", order_key, self.clock())


# --- reading ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OpenItem:
    order_key: str
    store_id: str
    status: str
    detail: str


@dataclass(frozen=True)
class StoreSummary:
    store_id: str
    name: str
    total: DayCounts

    @property
    def ratio(self) -> Decimal | None:
        return c.exception_ratio(self.total)

    @property
    def sku_share(self) -> list[c.SkuShare]:
        return c.top_skus(self.total.skus, TOP_SKUS_PER_STORE)


@dataclass(frozen=True)
class DashboardView:
    operator: str
    scope: str | None  # a store id, or None: every store the operator sees (the chain)
    stores: list[StoreSummary]  # every visible store, for the table and the scope links
    days: list[DayCounts]  # the scope's series, oldest first, one per day (zeros where nothing)
    total: DayCounts
    open_items: list[OpenItem]

    @property
    def ratio(self) -> Decimal | None:
        return c.exception_ratio(self.total)

    @property
    def p50(self) -> str | None:
        return c.percentile(self.total.latency, 0.50)

    @property
    def p95(self) -> str | None:
        return c.percentile(self.total.latency, 0.95)

    @property
    def tax_share(self) -> list[tuple[str, int, int]]:
        """(tax code, lines, fen), largest amount first."""
        return sorted(((k, n, f) for k, (n, f) in self.total.tax_codes.items()), key=lambda t: (-t[2], t[0]))

    @property
    def sku_share(self) -> list[c.SkuShare]:
        """The scope's top SKUs by amount (lines, fen, share), the rest as one ``(other)`` row."""
        return c.top_skus(self.total.skus, TOP_SKUS)


class Dashboard:
    def __init__(
        self,
        counters: CounterPort,
        orders: OrderReadPort,
        stores: StoreListPort,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self.counters = counters
        self.orders = orders
        self.stores = stores
        self.clock = clock

    def view(self, operator: Operator, *, store: str | None = None, days: int = 14) -> DashboardView:
        names = self.stores.names()
        visible = operator.visible(names)
        if store is not None and store not in visible:
            raise NotVisible(store)
        span = c.days_back(self.clock(), max(1, min(days, MAX_DAYS)))
        per_store = {s: self.counters.days(s, span[0], span[-1]) for s in visible}
        summaries = [StoreSummary(s, names[s], c.add_up("total", per_store[s])) for s in visible]
        scope = [store] if store else visible
        by_day = {d: c.add_up(d, (x for s in scope for x in per_store[s] if x.day == d)) for d in span}
        series = [by_day[d] for d in span]
        total = c.add_up("total", series)
        return DashboardView(operator.name, store, summaries, series, total, self._open(total, scope))

    def _open(self, total: DayCounts, scope: list[str]) -> list[OpenItem]:
        """Exceptions of the period still open (re-read: an operator may have fixed them), then records
        overdue for their next step (stuck), both limited to the scope."""
        wanted = set(scope)
        keys = sorted(total.exception_keys)[:200]
        found: dict[str, OpenItem] = {}
        for record in self.orders.get_many(keys):
            if record.status in OPEN_STATUSES and record.store_id in wanted:
                detail = record.text("failure_reason") or record.text("last_error") or ""
                if record.violations:
                    detail = ", ".join(v.get("code", "") for v in record.violations)
                found[record.order_key] = OpenItem(record.order_key, record.store_id, record.status.value, detail)
        for record in self.orders.overdue(self.clock().timestamp(), limit=MAX_OPEN_ITEMS):
            if record.store_id in wanted and record.order_key not in found:
                detail = "overdue since " + (record.text("due_at") or "?")
                found[record.order_key] = OpenItem(record.order_key, record.store_id, record.status.value, detail)
        return sorted(found.values(), key=lambda i: (i.store_id, i.order_key))[:MAX_OPEN_ITEMS]
