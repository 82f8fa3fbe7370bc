"""The monthly audit report's model: what was issued, reversed, voided and failed, why, by whom, sealed how.

Built from the month's :class:`~chalicelib.reports.facts.Fact` list, the archive's status changes
(``transition`` records: ``chalicelib/audit/records.py``) and the month's manifests. Placement: an
invoice (blue or red) by its issue time; an exception (rejected, failed, blocked, refused) by when
the order was received; days are the month's local days (:mod:`chalicelib.reports.month`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from chalicelib.domain.order_state import OrderStatus
from chalicelib.reports.facts import ZERO, Fact
from chalicelib.reports.month import Month

S = OrderStatus
#: Statuses listed as exceptions, with the label the report gives them.
EXCEPTIONS: dict[OrderStatus, str] = {
    S.REJECTED: "rejected",
    S.FAILED: "failed",
    S.FAILED_AUTH: "failed_auth",
    S.BLOCKED: "blocked",
    S.REFUND_UNMATCHED: "refund_unmatched",
    S.REFUND_REFUSED: "refund_refused",
    S.REFUND_MANUAL: "refund_manual",
    S.RED_FAILED: "red_failed",
    S.RED_FORM_EXPIRED: "red_form_expired",
}
#: The longest list of exceptions printed (the counts by cause cover all of them).
MAX_EXCEPTION_ROWS = 200


@dataclass(frozen=True)
class Tally:
    label: str
    count: int = 0
    amount: Decimal = ZERO  # excl. tax
    tax: Decimal = ZERO
    total: Decimal = ZERO


@dataclass(frozen=True)
class DayRow:
    day: date
    issued: int
    issued_total: Decimal
    reversed: int
    reversed_total: Decimal


@dataclass(frozen=True)
class ExceptionRow:
    order_key: str
    status: str
    cause: str  # the violation codes, or the failure code
    detail: str
    received: str  # local time


@dataclass(frozen=True)
class OperatorRow:
    operator: str
    action: str  # fixed | retried | <event>
    order_key: str
    at: str


@dataclass(frozen=True)
class ManifestRow:
    day: str
    merkle_root: str  # "" when there is no manifest
    objects: int
    previous: str


@dataclass
class AuditReport:
    store_id: str
    month: Month
    generated_at: str
    summary: list[Tally] = field(default_factory=list)
    days: list[DayRow] = field(default_factory=list)
    causes: list[tuple[str, int]] = field(default_factory=list)
    exceptions: list[ExceptionRow] = field(default_factory=list)
    exceptions_total: int = 0
    statuses: list[tuple[str, int]] = field(default_factory=list)  # current status of the month's records
    changes: list[tuple[str, int]] = field(default_factory=list)  # "from → to" counts from the archive
    history_source: str = ""
    operators: list[OperatorRow] = field(default_factory=list)
    manifests: list[ManifestRow] = field(default_factory=list)


def _tally(label: str, facts: Iterable[Fact]) -> Tally:
    chosen = list(facts)
    return Tally(
        label,
        len(chosen),
        sum((f.amount for f in chosen), ZERO),
        sum((f.tax for f in chosen), ZERO),
        sum((f.total for f in chosen), ZERO),
    )


def cause_of(f: Fact) -> str:
    """The cause an exception is counted under: its violation codes, failure code, or status."""
    if f.status is S.REJECTED:
        return ",".join(sorted(set(f.violations))) or "rejected"
    if f.status is S.FAILED_AUTH:
        return "auth"
    if f.voided:
        return "voided"
    return f.failure_code or EXCEPTIONS.get(f.status, f.status.value)


def _detail(f: Fact) -> str:
    return (f.failure_reason or f.last_error or ", ".join(f.violations))[:160]


def build_audit(
    store_id: str,
    month: Month,
    facts: Sequence[Fact],
    *,
    transitions: list[dict[str, Any]] | None,
    manifests: Mapping[str, dict[str, Any] | None],
    generated_at: str,
) -> AuditReport:
    report = AuditReport(store_id, month, generated_at)
    issued = [f for f in facts if not f.is_red and f.status is S.ISSUED and month.contains(f.issued_at)]
    reversed_ = [f for f in facts if f.is_red and f.status is S.RED_ISSUED and month.contains(f.issued_at)]
    received = [f for f in facts if month.contains(f.created_at)]
    voided = [f for f in received if f.voided]
    failed = [f for f in received if f.status in (S.FAILED, S.FAILED_AUTH, S.BLOCKED, S.RED_FAILED) and not f.voided]
    report.summary = [
        _tally("issued", issued),
        _tally("reversed (red)", reversed_),
        _tally("net", [*issued, *reversed_]),
        _tally("voided", voided),
        _tally("failed", failed),
        _tally("rejected", (f for f in received if f.status is S.REJECTED)),
        _tally("cancelled before issue", (f for f in received if f.status is S.CANCELLED)),
        _tally("not yet issued", (f for f in received if not f.is_red and f.status in _OPEN)),
    ]
    by_day: dict[date, list[Fact]] = {d: [] for d in month.days()}
    for f in [*issued, *reversed_]:
        assert f.issued_at is not None
        by_day.setdefault(month.local_day(f.issued_at), []).append(f)
    report.days = [
        DayRow(
            d,
            sum(1 for f in fs if not f.is_red),
            sum((f.total for f in fs if not f.is_red), ZERO),
            sum(1 for f in fs if f.is_red),
            sum((f.total for f in fs if f.is_red), ZERO),
        )
        for d, fs in sorted(by_day.items())
    ]
    exceptional = sorted(
        (f for f in received if f.status in EXCEPTIONS), key=lambda f: (f.created_at is None, f.created_at, f.order_key)
    )
    report.causes = Counter(cause_of(f) for f in exceptional).most_common()
    report.exceptions_total = len(exceptional)
    report.exceptions = [
        ExceptionRow(f.order_key, EXCEPTIONS[f.status], cause_of(f), _detail(f), month.local_text(f.created_at))
        for f in exceptional[:MAX_EXCEPTION_ROWS]
    ]
    report.statuses = sorted(Counter(f.status.value for f in received).items())
    report.operators = _operators(facts, transitions or [], month)
    if transitions is None:
        report.history_source = "no archive configured: current statuses only"
    else:
        report.history_source = f"{len(transitions)} status changes from the archive's transitions stream"
        report.changes = Counter(f"{t.get('from') or '∅'} → {t.get('to')}" for t in transitions).most_common()
    report.manifests = [_manifest_row(day, m) for day, m in sorted(manifests.items())]
    return report


_OPEN = frozenset({S.RECEIVED, S.QUEUED, S.ISSUING, S.RETRYING, S.AMBIGUOUS, S.ACCEPTED, S.HELD})


def _operators(facts: Sequence[Fact], transitions: list[dict[str, Any]], month: Month) -> list[OperatorRow]:
    rows = [
        OperatorRow(f.fixed_by, "fixed", f.order_key, str(f.fields.get("fixed_at", ""))) for f in facts if f.fixed_by
    ]
    seen = {(r.operator, r.order_key) for r in rows}
    for t in transitions:
        actor = str(t.get("actor", ""))
        if not actor.startswith("operator:"):
            continue
        name = actor.removeprefix("operator:")
        event = str(t.get("event", ""))
        action = "retried" if event in ("operator_retry", "red_operator_retry") else event
        if action.startswith("corrected") and (name, t.get("order_key")) in seen:
            continue  # the record's own fixed_by row says it
        rows.append(OperatorRow(name, action, str(t.get("order_key", "")), str(t.get("time", ""))))
    return sorted(rows, key=lambda r: (r.at, r.operator, r.order_key))


def _manifest_row(day: str, manifest: dict[str, Any] | None) -> ManifestRow:
    if manifest is None:
        return ManifestRow(day, "", 0, "")
    previous = manifest.get("previous") or {}
    return ManifestRow(
        day,
        str(manifest.get("merkle_root", "")),
        len(manifest.get("objects") or []),
        str(previous.get("sm3", ""))[:16] if isinstance(previous, dict) else "",
    )
