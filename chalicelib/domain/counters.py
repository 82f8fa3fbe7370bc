"""The dashboard's counters, pure: what one invoice adds to its store's day, and what a day reads back as.

One counter item per store and day (China time, the invoices' own dates) is incremented as invoices
change — issued, rejected, failed, blocked — so the dashboard never scans the ledger. An issued
invoice adds its amount (fen, exact integers), each tax code's lines and amount (product share), and
one count to a fixed latency histogram (payment → invoice); an exception adds its order key to the
day's set of exception keys (the "stuck or failed" list, re-checked against the ledger when shown).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CHINA = timezone(timedelta(hours=8))
ISSUED = "issued"
#: Outcomes counted as exceptions against the issued ones (the exception ratio).
EXCEPTIONS: tuple[str, ...] = ("rejected", "failed", "blocked")
OUTCOMES: tuple[str, ...] = (ISSUED, *EXCEPTIONS)
#: Payment → invoice latency histogram: upper bounds in seconds; slower falls into ``inf``.
LATENCY_BOUNDS: tuple[int, ...] = (5, 10, 30, 60, 120, 300, 900, 3600, 4 * 3600, 24 * 3600)
LATENCY_LABELS: tuple[str, ...] = (*(str(b) for b in LATENCY_BOUNDS), "inf")


def day_of(moment: datetime) -> str:
    """The China date of ``moment`` (an aware datetime), ``YYYY-MM-DD``."""
    return moment.astimezone(CHINA).strftime("%Y-%m-%d")


def fen(amount: Decimal) -> int:
    """Yuan to fen, rounded half up (amounts are two decimals already; this only makes it explicit)."""
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def yuan(fen_value: int) -> Decimal:
    return (Decimal(fen_value) / 100).quantize(Decimal("0.01"))


def latency_label(seconds: float) -> str:
    for bound in LATENCY_BOUNDS:
        if seconds <= bound:
            return str(bound)
    return "inf"


def percentile(histogram: Mapping[str, int], q: float) -> str | None:
    """The bucket label (an upper bound in seconds, or ``inf``) holding quantile ``q`` (0–1)."""
    total = sum(histogram.get(label, 0) for label in LATENCY_LABELS)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for label in LATENCY_LABELS:
        seen += histogram.get(label, 0)
        if seen >= rank and seen > 0:
            return label
    return "inf"


@dataclass(frozen=True)
class CounterDelta:
    """What one change adds to ``store_id``'s day ``day``."""

    store_id: str
    day: str
    outcome: str
    fen: int = 0
    tax_codes: tuple[tuple[str, int, int], ...] = ()  # (tax code, lines, fen)
    latency: str | None = None  # a LATENCY_LABELS entry
    exception_key: str | None = None


@dataclass(frozen=True)
class DayCounts:
    day: str
    counts: dict[str, int] = field(default_factory=dict)  # outcome → number
    fen_issued: int = 0
    tax_codes: dict[str, tuple[int, int]] = field(default_factory=dict)  # code → (lines, fen)
    latency: dict[str, int] = field(default_factory=dict)  # label → number
    exception_keys: frozenset[str] = frozenset()

    def count(self, outcome: str) -> int:
        return self.counts.get(outcome, 0)


def add_up(day: str, items: Iterable[DayCounts]) -> DayCounts:
    """The sum of several days or stores, labelled ``day``."""
    counts: dict[str, int] = {}
    codes: dict[str, tuple[int, int]] = {}
    latency: dict[str, int] = {}
    keys: set[str] = set()
    total = 0
    for item in items:
        total += item.fen_issued
        for k, v in item.counts.items():
            counts[k] = counts.get(k, 0) + v
        for code, (n, f) in item.tax_codes.items():
            was = codes.get(code, (0, 0))
            codes[code] = (was[0] + n, was[1] + f)
        for label, v in item.latency.items():
            latency[label] = latency.get(label, 0) + v
        keys |= item.exception_keys
    return DayCounts(day, counts, total, codes, latency, frozenset(keys))


def exception_ratio(counts: DayCounts) -> Decimal | None:
    """Exceptions / (issued + exceptions), 4 decimals; None with nothing counted."""
    exceptions = sum(counts.count(o) for o in EXCEPTIONS)
    whole = exceptions + counts.count(ISSUED)
    if whole == 0:
        return None
    return (Decimal(exceptions) / Decimal(whole)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def issued_delta(
    store_id: str, payload: Mapping[str, Any], created_at: str, issued_at: datetime, total: Decimal | None
) -> CounterDelta:
    """What an issued invoice adds: from the record's payload (its normalised order, the event's
    payment time — else the time the record was created) and the issue time."""
    order = payload.get("order") or {}
    codes: dict[str, tuple[int, int]] = {}
    for line in order.get("lines") or []:
        code = str(line.get("tax_code") or "unknown")
        n, f = codes.get(code, (0, 0))
        codes[code] = (n + 1, f + fen(Decimal(str(line.get("total") or "0"))))
    amount = Decimal(str(order["total"])) if order.get("total") is not None else (total or Decimal(0))
    paid = _parse_time((payload.get("event") or {}).get("occurred_at")) or _parse_time(created_at)
    latency = latency_label(max(0.0, (issued_at - paid).total_seconds())) if paid else None
    return CounterDelta(
        store_id=store_id,
        day=day_of(issued_at),
        outcome=ISSUED,
        fen=fen(amount),
        tax_codes=tuple(sorted((c, n, f) for c, (n, f) in codes.items())),
        latency=latency,
    )


def exception_delta(store_id: str, outcome: str, order_key: str, at: datetime) -> CounterDelta:
    if outcome not in EXCEPTIONS:
        raise ValueError(f"not an exception outcome: {outcome}")
    return CounterDelta(store_id=store_id, day=day_of(at), outcome=outcome, exception_key=order_key)


def days_back(today: datetime, days: int) -> list[str]:
    """The ``days`` China dates ending with ``today``'s, oldest first."""
    local = today.astimezone(CHINA)
    return [(local - timedelta(days=i)).strftime("%Y-%m-%d") for i in range(days - 1, -1, -1)]
