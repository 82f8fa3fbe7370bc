"""Reconciliation of one store's month: orders vs invoices vs refunds vs the tax platform's own records.

Every difference is one row with its kind (:data:`KINDS`; ``docs/finance.md`` says how to read each).
The platform side is what its query operation answers under each serial we hold (the protocols
have no list-by-date query: see :func:`platform_serials` and docs/finance.md — an invoice issued under
a serial this service never used is not found this way).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from chalicelib.domain.order_state import TERMINAL, OrderStatus
from chalicelib.reports.facts import ZERO, Fact, plain
from chalicelib.reports.month import Month
from chalicelib.taxapi.base import InvoiceResult, InvoiceStatus

S = OrderStatus

PAID_NOT_INVOICED = "paid_not_invoiced"
INVOICED_UNKNOWN_TO_PLATFORM = "invoiced_unknown_to_platform"
PLATFORM_INVOICE_UNKNOWN_HERE = "platform_invoice_unknown_here"
PLATFORM_STATUS_DIFFERS = "platform_status_differs"
NUMBER_MISMATCH = "number_mismatch"
AMOUNT_MISMATCH = "amount_mismatch"
REFUND_NOT_REVERSED = "refund_not_reversed"
RED_EXCEEDS_BLUE = "red_exceeds_blue"
STUCK = "stuck"
#: Every kind, in the order the CSV lists them.
KINDS: tuple[str, ...] = (
    PAID_NOT_INVOICED,
    INVOICED_UNKNOWN_TO_PLATFORM,
    PLATFORM_INVOICE_UNKNOWN_HERE,
    PLATFORM_STATUS_DIFFERS,
    NUMBER_MISMATCH,
    AMOUNT_MISMATCH,
    REFUND_NOT_REVERSED,
    RED_EXCEEDS_BLUE,
    STUCK,
)
#: A record still in progress this long after its next check was due (or, with none, after its last
#: change) is stuck: the sweeper re-sends a record within a minute of ``due_at``.
STUCK_AFTER = timedelta(hours=1)
#: Blue statuses that mean "paid, and no invoice will come by itself".
_NOT_INVOICED = frozenset({S.FAILED, S.FAILED_AUTH, S.BLOCKED, S.REJECTED, S.HELD})
#: Refund statuses that mean "refunded, and no red invoice will come by itself".
_NOT_REVERSED = frozenset({S.REFUND_UNMATCHED, S.REFUND_REFUSED, S.REFUND_MANUAL, S.RED_FAILED, S.RED_FORM_EXPIRED})
#: Records never sent to the platform (nothing to ask it about).
_NEVER_SENT = frozenset({S.RECEIVED, S.QUEUED, S.HELD, S.REJECTED, S.CANCELLED, S.REFUND_NETTED, S.REFUND_PENDING})

COLUMNS = (
    "kind",
    "order_key",
    "record_kind",
    "status",
    "serial",
    "invoice_number",
    "platform_status",
    "platform_number",
    "ledger_total",
    "platform_total",
    "received_at",
    "detail",
)


@dataclass(frozen=True)
class Difference:
    kind: str
    order_key: str
    record_kind: str
    status: str
    serial: str = ""
    invoice_number: str = ""
    platform_status: str = ""
    platform_number: str = ""
    ledger_total: str = ""
    platform_total: str = ""
    received_at: str = ""
    detail: str = ""

    def row(self) -> list[str]:
        return [str(getattr(self, c)) for c in COLUMNS]


def platform_serials(facts: Iterable[Fact]) -> list[str]:
    """The serials to ask the platform about: every record that may have been sent (blue and red)."""
    return sorted({f.serial for f in facts if f.serial and f.status not in _NEVER_SENT})


def _stuck(f: Fact, now: datetime) -> bool:
    if f.status in TERMINAL:
        return False
    since = f.due_at or f.updated_at or f.created_at
    return since is not None and now - since > STUCK_AFTER


def _platform_total(p: InvoiceResult) -> Decimal | None:
    if p.total_amount is None or p.total_tax is None:
        return None
    return p.total_amount + p.total_tax


def _compare(f: Fact, p: InvoiceResult | None, base: dict[str, str]) -> list[Difference]:
    issued_here = f.status in (S.ISSUED, S.RED_ISSUED)
    if p is None:
        if issued_here:
            return [
                Difference(INVOICED_UNKNOWN_TO_PLATFORM, **base, detail="the platform has nothing under this serial")
            ]
        return []
    info = {
        **base,
        "platform_status": p.status.value,
        "platform_number": p.invoice_number or "",
        "platform_total": plain(t) if (t := _platform_total(p)) is not None else "",
    }
    if p.status is InvoiceStatus.ISSUED and not issued_here:
        return [
            Difference(PLATFORM_INVOICE_UNKNOWN_HERE, **info, detail=f"issued on the platform, {f.status.value} here")
        ]
    if issued_here and p.status is not InvoiceStatus.ISSUED:
        return [Difference(PLATFORM_STATUS_DIFFERS, **info, detail=f"issued here, {p.status.value} on the platform")]
    if not issued_here:
        return []
    found: list[Difference] = []
    if p.invoice_number and f.invoice_number and p.invoice_number != f.invoice_number:
        found.append(Difference(NUMBER_MISMATCH, **info, detail="the platform's number differs from the ledger's"))
    total = _platform_total(p)
    if total is not None and abs(total) != abs(f.total):
        found.append(Difference(AMOUNT_MISMATCH, **info, detail=f"ledger {plain(f.total)}, platform {plain(total)}"))
    return found


def reconcile(
    month: Month,
    facts: Sequence[Fact],
    *,
    blues: Mapping[str, Fact],
    platform: Mapping[str, InvoiceResult],
    now: datetime,
) -> list[Difference]:
    """Every difference among the month's records (``facts``), their refunds' blue records (``blues``,
    key → fact, earlier months' included) and the platform's answers (serial → result)."""
    found: list[Difference] = []
    reds_of: dict[str, list[Fact]] = {}
    for f in facts:
        base = {
            "order_key": f.order_key,
            "record_kind": f.kind,
            "status": f.status.value,
            "serial": f.serial,
            "invoice_number": f.invoice_number,
            "ledger_total": plain(f.total) if f.total or f.status in (S.ISSUED, S.RED_ISSUED) else "",
            "received_at": month.local_text(f.created_at),
        }
        if f.is_red:
            reds_of.setdefault(f.blue_key, []).append(f)
        in_month = month.contains(f.created_at)
        if not (in_month or month.contains(f.issued_at)):
            continue  # read for the lookback only: an earlier month's record
        if _stuck(f, now):
            found.append(
                Difference(
                    STUCK,
                    **base,
                    detail=f"in {f.status.value} since {month.local_text(f.due_at or f.updated_at or f.created_at)}",
                )
            )
        elif in_month and not f.is_red and f.status in _NOT_INVOICED:
            why = f.failure_reason or f.last_error or ", ".join(f.violations) or f.status.value
            found.append(Difference(PAID_NOT_INVOICED, **base, detail=f"{f.status.value}: {why}"[:200]))
        elif in_month and f.is_red and f.status in _NOT_REVERSED:
            found.append(
                Difference(
                    REFUND_NOT_REVERSED, **base, detail=f"{f.status.value}: {f.last_error or f.failure_reason}"[:200]
                )
            )
        if f.serial and f.status not in _NEVER_SENT:
            found.extend(_compare(f, platform.get(f.serial), base))
    for blue_key, reds in sorted(reds_of.items()):
        blue = blues.get(blue_key)
        if blue is None:
            continue
        reversed_ = sum((abs(r.total) for r in reds if r.status is S.RED_ISSUED), ZERO)
        # A refund netted before issue reduced the blue itself: it is in the refund book, not on the blue.
        netted = sum((r.paid for r in reds if r.status is S.REFUND_NETTED), ZERO)
        taken = max(reversed_, blue.refunded_total - netted)
        if blue.total and taken > blue.total:
            found.append(
                Difference(
                    RED_EXCEEDS_BLUE,
                    order_key=blue_key,
                    record_kind="blue",
                    status=blue.status.value,
                    serial=blue.serial,
                    invoice_number=blue.invoice_number,
                    ledger_total=plain(blue.total),
                    received_at=month.local_text(blue.created_at),
                    detail=(
                        f"reversed {plain(reversed_)}, refunds reserved {plain(blue.refunded_total)} "
                        f"(netted before issue {plain(netted)}), blue {plain(blue.total)}"
                    ),
                )
            )
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted(found, key=lambda d: (order[d.kind], d.order_key))
