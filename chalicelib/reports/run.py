"""The three reports end to end over the ports: read the month, make the facts, build, write bytes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from chalicelib.domain.order_keys import parse_order_key
from chalicelib.reports import audit, audit_pdf, receivables, reconcile
from chalicelib.reports.csv_out import csv_bytes
from chalicelib.reports.facts import Fact, fact_of
from chalicelib.reports.month import Month
from chalicelib.reports.ports import ArchiveReads, MonthRecords, PlatformRecords
from chalicelib.services.ports import OrderRecord

Progress = Callable[[str, int], None]


def _quiet(_: str, __: int) -> None:
    return None


@dataclass(frozen=True)
class Loaded:
    facts: list[Fact]
    blues: dict[str, Fact]  # every blue record the month's refunds refer to, and the month's blues


def load(records: MonthRecords, store_id: str, month: Month, progress: Progress = _quiet) -> Loaded:
    """The month's records as facts; a refund's blue (of an earlier month too) read by key."""
    raw: list[OrderRecord] = []
    for record in records.month(store_id, month):
        raw.append(record)
        if len(raw) % 1000 == 0:
            progress("read", 1000)
    progress("read", len(raw) % 1000)
    by_key = {r.order_key: r for r in raw}
    parsed = [parse_order_key(r.order_key) for r in raw]
    blue_of = {
        r.order_key: r.text("blue_key") or str(key.blue) for r, key in zip(raw, parsed, strict=True) if key.is_refund
    }
    wanted = set(blue_of.values())
    missing = sorted(wanted - set(by_key))
    for r in records.get_many(missing) if missing else []:
        by_key.setdefault(r.order_key, r)
    blue_records = {k: by_key[k] for k in wanted if k in by_key}
    facts: list[Fact] = []
    for r, key in zip(raw, parsed, strict=True):
        blue = blue_records.get(blue_of[r.order_key]) if key.is_refund else None
        facts.append(fact_of(r, blue, key=key))
    blues = {f.order_key: f for f in facts if not f.is_red}
    for k, r in blue_records.items():
        blues.setdefault(k, fact_of(r))
    progress("facts", len(facts))
    return Loaded(facts, blues)


def _now() -> datetime:
    return datetime.now(UTC)


def audit_report(
    loaded: Loaded, store_id: str, month: Month, archive: ArchiveReads, now: datetime | None = None
) -> tuple[audit.AuditReport, bytes]:
    report = audit.build_audit(
        store_id,
        month,
        loaded.facts,
        transitions=archive.transitions(store_id, month),
        manifests=archive.manifests(store_id, month),
        generated_at=(now or _now()).strftime("%Y-%m-%d %H:%M:%S UTC"),
    )
    return report, audit_pdf.audit_pdf(report)


def reconcile_report(
    loaded: Loaded, month: Month, platform: PlatformRecords, now: datetime | None = None
) -> tuple[list[reconcile.Difference], bytes, int]:
    """(differences, CSV bytes, serials asked about)."""
    serials = reconcile.platform_serials(
        f for f in loaded.facts if month.contains(f.created_at) or month.contains(f.issued_at)
    )
    answers = platform.lookup(serials)
    found = reconcile.reconcile(month, loaded.facts, blues=loaded.blues, platform=answers, now=now or _now())
    return found, csv_bytes(reconcile.COLUMNS, (d.row() for d in found)), len(serials)


def receivables_report(loaded: Loaded, month: Month) -> tuple[Sequence[receivables.Receivable], bytes]:
    rows = receivables.receivables(month, loaded.facts)
    return rows, csv_bytes(receivables.COLUMNS, (r.row() for r in rows))
