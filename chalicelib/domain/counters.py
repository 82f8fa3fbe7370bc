"""The dashboard's counters, pure: what one invoice adds to its store's day, and what a day reads back as.

One counter item per store and day (China time, the invoices' own dates) is incremented as invoices
change — issued, rejected, failed, blocked — so the dashboard never scans the ledger. An issued
invoice adds its amount (fen, exact integers), each tax code's lines and amount (product share), and
one count to a fixed latency histogram (payment → invoice); an exception adds its order key to the
day's set of exception keys (the "stuck or failed" list, re-checked against the ledger when shown).

SKUs (product share by SKU) are bounded so the item stays far below DynamoDB's 400 KB whatever a
store sells: each SKU falls into one of :data:`SKU_SLOTS` slots (a stable hash), a slot keeps the
first SKU it saw that day as its label, its lines, fen and the *sum of its SKUs' hashes*. A slot
whose hash sum is ``lines × hash(label)`` holds that one SKU only and reads back under its name;
a slot two SKUs collided in reads back under :data:`OTHER_SKU`. So at most ``SKU_SLOTS`` SKUs a day
are named and all the rest is exact in ``(other)``, with no condition and no read: still one
UpdateItem per invoice (a condition "first N SKUs by name, the rest in other" cannot route an
increment inside one UpdateItem; it would fail the write and cost a second call).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from chalicelib.domain.china_time import CHINA_TZ as CHINA

ISSUED = "issued"
#: Outcomes counted as exceptions against the issued ones (the exception ratio).
EXCEPTIONS: tuple[str, ...] = ("rejected", "failed", "blocked")
OUTCOMES: tuple[str, ...] = (ISSUED, *EXCEPTIONS)
#: Payment → invoice latency histogram: upper bounds in seconds; slower falls into ``inf``.
LATENCY_BOUNDS: tuple[int, ...] = (5, 10, 30, 60, 120, 300, 900, 3600, 4 * 3600, 24 * 3600)
LATENCY_LABELS: tuple[str, ...] = (*(str(b) for b in LATENCY_BOUNDS), "inf")
#: SKU slots per store and day: at most this many SKUs a day are counted by name (see the docstring).
SKU_SLOTS = 200
#: A SKU is counted by its first this many characters (the label stored in the item).
SKU_CHARS = 64
NO_SKU = "(no sku)"
OTHER_SKU = "(other)"
NO_SKU_SLOT = "-"


def day_of(moment: datetime) -> str:
    """The China date of ``moment`` (an aware datetime), ``YYYY-MM-DD``."""
    return moment.astimezone(CHINA).strftime("%Y-%m-%d")


def fen(amount: Decimal) -> int:
    """Yuan to fen, rounded half up (amounts are two decimals already; this only makes it explicit)."""
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def yuan(fen_value: int) -> Decimal:
    return (Decimal(fen_value) / 100).quantize(Decimal("0.01"))


def sku_hash(sku: str) -> int:
    """A stable 56-bit hash of a SKU (sums of a day's hashes stay far inside DynamoDB's 38 digits)."""
    return int.from_bytes(hashlib.blake2b(sku.encode(), digest_size=7).digest(), "big")


def sku_slot(sku: str, slots: int = SKU_SLOTS) -> str:
    """The slot a SKU is counted in; lines without a SKU have their own slot."""
    if sku == NO_SKU:
        return NO_SKU_SLOT
    return str(int.from_bytes(hashlib.blake2b(sku.encode(), digest_size=8, person=b"slot").digest(), "big") % slots)


@dataclass(frozen=True)
class SkuSlot:
    """What one invoice adds to one SKU slot: the label (its first SKU), lines, fen, hash sum."""

    slot: str
    label: str
    lines: int
    fen: int
    hashes: int


def sku_slots(skus: Iterable[tuple[str, int, int]], slots: int = SKU_SLOTS) -> tuple[SkuSlot, ...]:
    """Group an invoice's (SKU, lines, fen) by slot (two SKUs of one invoice may share one)."""
    grouped: dict[str, SkuSlot] = {}
    for sku, n, f in sorted(skus):
        slot = sku_slot(sku, slots)
        h = 0 if slot == NO_SKU_SLOT else sku_hash(sku) * n
        was = grouped.get(slot)
        grouped[slot] = (
            SkuSlot(slot, sku, n, f, h)
            if was is None
            else SkuSlot(slot, was.label, was.lines + n, was.fen + f, was.hashes + h)
        )
    return tuple(grouped[k] for k in sorted(grouped))


def sku_reading(slot: str, label: str, lines: int, hashes: int) -> str:
    """The name a stored slot reads back under: its label if only that SKU was counted in it, else other."""
    if slot == NO_SKU_SLOT:
        return NO_SKU
    return label if label and hashes == lines * sku_hash(label) else OTHER_SKU


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
    skus: tuple[tuple[str, int, int], ...] = ()  # (SKU or NO_SKU, lines, fen)
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
    skus: dict[str, tuple[int, int]] = field(default_factory=dict)  # SKU / NO_SKU / OTHER_SKU → (lines, fen)

    def count(self, outcome: str) -> int:
        return self.counts.get(outcome, 0)


def add_up(day: str, items: Iterable[DayCounts]) -> DayCounts:
    """The sum of several days or stores, labelled ``day``."""
    counts: dict[str, int] = {}
    codes: dict[str, tuple[int, int]] = {}
    skus: dict[str, tuple[int, int]] = {}
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
        for sku, (n, f) in item.skus.items():
            was = skus.get(sku, (0, 0))
            skus[sku] = (was[0] + n, was[1] + f)
        for label, v in item.latency.items():
            latency[label] = latency.get(label, 0) + v
        keys |= item.exception_keys
    return DayCounts(day, counts, total, codes, latency, frozenset(keys), skus)


@dataclass(frozen=True)
class SkuShare:
    sku: str  # a SKU, NO_SKU or OTHER_SKU
    lines: int
    fen: int
    share: Decimal  # of the amount of every line counted, 4 decimals


def top_skus(skus: Mapping[str, tuple[int, int]], limit: int) -> list[SkuShare]:
    """The ``limit`` SKUs with the largest amount (ties: more lines, then name); the rest, with the
    slots' own ``(other)``, summed into one ``(other)`` row at the end."""
    whole = sum(f for _, f in skus.values())

    def share(f: int) -> Decimal:
        if not whole:
            return Decimal(0)
        return (Decimal(f) / Decimal(whole)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)

    named = sorted(((k, n, f) for k, (n, f) in skus.items() if k != OTHER_SKU), key=lambda t: (-t[2], -t[1], t[0]))
    rows = [SkuShare(k, n, f, share(f)) for k, n, f in named[:limit]]
    rest_n, rest_f = skus.get(OTHER_SKU, (0, 0))
    for _, n, f in named[limit:]:
        rest_n, rest_f = rest_n + n, rest_f + f
    if rest_n or rest_f:
        rows.append(SkuShare(OTHER_SKU, rest_n, rest_f, share(rest_f)))
    return rows


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
    skus: dict[str, tuple[int, int]] = {}
    for line in order.get("lines") or []:
        code = str(line.get("tax_code") or "unknown")
        line_fen = fen(Decimal(str(line.get("total") or "0")))
        n, f = codes.get(code, (0, 0))
        codes[code] = (n + 1, f + line_fen)
        sku = str(line.get("sku") or "").strip()[:SKU_CHARS] or NO_SKU
        n, f = skus.get(sku, (0, 0))
        skus[sku] = (n + 1, f + line_fen)
    amount = Decimal(str(order["total"])) if order.get("total") is not None else (total or Decimal(0))
    paid = _parse_time((payload.get("event") or {}).get("occurred_at")) or _parse_time(created_at)
    latency = latency_label(max(0.0, (issued_at - paid).total_seconds())) if paid else None
    return CounterDelta(
        store_id=store_id,
        day=day_of(issued_at),
        outcome=ISSUED,
        fen=fen(amount),
        tax_codes=tuple(sorted((c, n, f) for c, (n, f) in codes.items())),
        skus=tuple(sorted((k, n, f) for k, (n, f) in skus.items())),
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
