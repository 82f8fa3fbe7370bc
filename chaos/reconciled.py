"""Invariant 5, "reconciliation clean": ``chalicelib/reports/reconcile.py`` itself, over the same readings.

The ledger side is the report's own :func:`chalicelib.reports.run.load` over the records read (an
in-memory :class:`~chalicelib.reports.ports.MonthRecords`); the platform side is the sandbox's admin
view as :class:`~chalicelib.reports.ports.PlatformRecords` (serial → what the platform holds), which
is what the report's protocol queries would answer, without a store's credentials. Each store of the
journal, each month its records were received in.

Differences the run *meant* are not offences: ``paid_not_invoiced`` for an order rejected, held by the
pilot share or failed with a reason (row "no order lost" demands exactly that of them), and
``refund_not_reversed`` for a refund handed to an operator because its blue is one of those.
Any other difference is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from chalicelib.domain.order_state import OrderStatus
from chalicelib.reports import reconcile as rc
from chalicelib.reports.month import UTC_OFFSET_HOURS, Month, parse_time
from chalicelib.reports.run import load, reconcile_report
from chalicelib.services.ports import OrderRecord
from chalicelib.taxapi.base import InvoiceResult, InvoiceStatus
from chaos.journal import Journal
from chaos.readings import Readings

if TYPE_CHECKING:
    from chaos.check import Joined, Row, Webhook

S = OrderStatus
_STATUS = {
    "issued": InvoiceStatus.ISSUED,
    "pending": InvoiceStatus.PENDING,
    "failed": InvoiceStatus.FAILED,
    "voided": InvoiceStatus.VOIDED,
}
#: The rank of a sandbox status when one serial holds several invoices (the live one answers).
_RANK = {"issued": 0, "voided": 1, "pending": 2, "failed": 3}
NOT_INVOICED_MEANT = frozenset({S.REJECTED, S.HELD, S.FAILED, S.BLOCKED})
NOT_REVERSED_MEANT = frozenset({S.REFUND_MANUAL})


class MemoryRecords:
    """:class:`~chalicelib.reports.ports.MonthRecords` over records already read."""

    def __init__(self, records: Iterable[OrderRecord]) -> None:
        self.by_key = {r.order_key: r for r in records}

    def month(self, store_id: str, month: Month) -> Iterator[OrderRecord]:
        lo, hi = month.read_from, month.end
        for record in self.by_key.values():
            at = parse_time(record.created_at)
            if record.store_id == store_id and at is not None and lo <= at < hi:
                yield record

    def get_many(self, order_keys: Sequence[str]) -> list[OrderRecord]:
        return [self.by_key[k] for k in order_keys if k in self.by_key]


def _decimal(value: object) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


class SandboxPlatform:
    """:class:`~chalicelib.reports.ports.PlatformRecords` from ``GET /admin/invoices``."""

    def __init__(self, invoices: Iterable[Mapping[str, Any]]) -> None:
        self.by_serial: dict[str, InvoiceResult] = {}
        ranked = sorted(invoices, key=lambda i: _RANK.get(str(i.get("status")), 9), reverse=True)
        for inv in ranked:  # the best-ranked invoice of a serial is written last
            status = _STATUS.get(str(inv.get("status")))
            if status is None:
                continue
            serial = str(inv.get("serial", ""))
            self.by_serial[serial] = InvoiceResult(
                serial=serial,
                order_no=str(inv.get("order_no") or "") or None,
                status=status,
                invoice_number=str(inv.get("number") or "") or None,
                total_amount=_decimal(inv.get("amount")),
                total_tax=_decimal(inv.get("tax")),
                failure_reason=str(inv.get("failure") or "") or None,
            )

    def lookup(self, serials: Iterable[str]) -> Mapping[str, InvoiceResult]:
        return {s: self.by_serial[s] for s in serials if s in self.by_serial}


def months_of(records: Iterable[OrderRecord]) -> list[Month]:
    """The report months (local time, :data:`UTC_OFFSET_HOURS`) the records were received or issued in."""
    found: set[tuple[int, int]] = set()
    for record in records:
        for text in (record.created_at, record.text("issued_at")):
            at = parse_time(text)
            if at is not None:
                local = at.astimezone(UTC) + timedelta(hours=UTC_OFFSET_HOURS)
                found.add((local.year, local.month))
    return [Month(y, m) for y, m in sorted(found)]


def differences(readings: Readings, stores: Iterable[str], now: datetime | None = None) -> list[rc.Difference]:
    """Every difference ``reconcile`` finds for ``stores`` over the months of the records read."""
    records = MemoryRecords(readings.records)
    platform = SandboxPlatform(readings.invoices)
    found: dict[tuple[str, str], rc.Difference] = {}
    for store in sorted(set(stores)):
        own = [r for r in readings.records if r.store_id == store]
        for month in months_of(own):
            loaded = load(records, store, month)
            diffs, _, _ = reconcile_report(loaded, month, platform, now=now or datetime.now(UTC))
            for d in diffs:
                found.setdefault((d.kind, d.order_key), d)
    return list(found.values())


def meant(d: rc.Difference, joined: Joined) -> bool:
    """A difference the run meant (see the module docstring)."""
    from chaos.check import reason_of

    record = joined.records.get(d.order_key)
    if record is None:
        return False
    if d.kind == rc.PAID_NOT_INVOICED and record.status in NOT_INVOICED_MEANT:
        return record.status in (S.REJECTED, S.HELD) or bool(reason_of(record))
    return d.kind == rc.REFUND_NOT_REVERSED and record.status in NOT_REVERSED_MEANT


def row(journal: Journal, hooks: dict[str, Webhook], joined: Joined, readings: Readings) -> Row:
    from chaos.check import _row

    stores = {p.store_id for p in journal.posts}
    found = differences(readings, stores)
    offences = [d for d in found if not meant(d, joined)]
    offenders = [f"{d.kind} {d.order_key}: {d.detail}"[:200] for d in offences]
    explained = len(found) - len(offences)
    observed = None if offenders else f"clean ({explained} differences meant: rejected / held / failed)"
    return _row("reconciliation clean", "no difference but those the run meant", offenders, observed)
