"""The buyer's own invoice title (抬头), asked for through the customer's link (``/i/{token}/title``).

The title and tax id are checked by the validator's own party rules (``check_parties``: name
required and ≤ 100 characters; a company needs a tax id; the tax id's form and — under the store's
``buyer_checksum_policy`` — its GB 32100 check character); the errors come back by form field.
Then, by where the order stands:

- ``rejected`` — the order is corrected with the title through the operator's own path
  (:class:`chalicelib.services.rejections.FixRejected`, ``by = "buyer-link"``): validated again under
  the store's current settings and issued like a new order. Other problems of the order are shown.
- ``received`` / ``queued`` / ``retrying`` (``order_state.RETITLABLE``: nothing can exist on the tax
  platform yet) — the event is merged with the new buyer, normalised and validated again
  (``ingest.assess``), and the payload replaced by one compare-and-set write of the ledger
  (``revise``: the status must still be the one read, no status change). The next attempt issues it
  with that title. Lost to a worker that claimed it meanwhile: recorded as after issue (below).
- ``issued`` (a personal or a company invoice) — the request is recorded on the order record,
  ``title_change`` = ``{"title", "tax_id", "requested_at", "source": "link", "stage": "after_issue"}``,
  for the after-sale flow's 换开 (red + new blue); the page says 已提交换开申请.
- anything else (held, failed, blocked …) — recorded the same way with ``stage = "with_shop"``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from pydantic import ValidationError

from chalicelib.domain.models import (
    BuyerType,
    InvoiceBuyer,
    InvoiceOrder,
    Party,
    PaymentEvent,
    Store,
    Violation,
)
from chalicelib.domain.order_state import RETITLABLE, OrderStatus
from chalicelib.domain.taxcodes import TaxCodeTable
from chalicelib.domain.taxpayer import clean_tax_id
from chalicelib.domain.validation_rules import Findings, check_parties
from chalicelib.services.customer_page import PageStatus, page_status
from chalicelib.services.ingest import assess
from chalicelib.services.links import LinkView
from chalicelib.services.ports import Fields, OrderRecord, Transition
from chalicelib.services.rejections import FixResult, merge

#: Form field ← the validator's field path.
FORM_FIELDS = {"buyer.name": "title", "buyer.title": "title", "buyer.tax_id": "tax_id"}
SOURCE = "buyer-link"


class Outcome(StrEnum):
    INVALID = "invalid"  # errors by field: nothing written
    APPLIED = "applied"  # the order will be issued with this title
    CHANGE_REQUESTED = "change_requested"  # 已提交换开申请 (after issue)
    RECORDED = "recorded"  # the shop handles it (held, failed …)
    REFUSED = "refused"  # reversed / cancelled / refund record: no title change through the link
    CONFLICT = "conflict"  # the record changed meanwhile: try again


@dataclass(frozen=True)
class TitleForm:
    title: str
    tax_id: str

    @classmethod
    def of(cls, title: str, tax_id: str) -> TitleForm:
        return cls(title=" ".join(title.split()), tax_id=clean_tax_id(tax_id))


@dataclass(frozen=True)
class TitleResult:
    outcome: Outcome
    #: form field ("title" / "tax_id") → its violations; "" → the order's other problems
    errors: dict[str, list[Violation]] = field(default_factory=dict)
    warnings: tuple[Violation, ...] = ()


class TitleLedgerPort(Protocol):
    def get_order(self, order_key: str) -> OrderRecord | None: ...

    def revise(
        self,
        order_key: str,
        *,
        revision: int,
        statuses: frozenset[OrderStatus],
        now: float,
        fields: Fields,
        payload: dict[str, Any] | None = None,
    ) -> Transition: ...


class TitleStorePort(Protocol):
    def get(self, store_id: str) -> Store: ...


class TitleTaxCodePort(Protocol):
    def current(self) -> TaxCodeTable: ...


class FixPort(Protocol):
    def __call__(self, order_key: str, corrections: Mapping[str, Any], *, by: str) -> FixResult: ...


def by_field(violations: tuple[Violation, ...] | list[Violation]) -> dict[str, list[Violation]]:
    grouped: dict[str, list[Violation]] = {}
    for v in violations:
        grouped.setdefault(FORM_FIELDS.get(v.field, ""), []).append(v)
    return grouped


def check_title(
    form: TitleForm, store: Store, buyer_type: BuyerType = BuyerType.COMPANY
) -> tuple[dict[str, list[Violation]], tuple[Violation, ...]]:
    """The validator's party rules on the buyer alone: (errors by field, warnings)."""
    probe = InvoiceOrder(
        order_key="title:check:probe",
        store_id=store.store_id,
        order_id="probe",
        seller=Party(name=store.seller.name, tax_id=store.seller.tax_id),
        buyer=InvoiceBuyer(name=form.title, tax_id=form.tax_id or None, type=buyer_type),
        lines=(),
        total_amount=Decimal(0),
        total_tax=Decimal(0),
        total=Decimal(0),
        issuer="-",
    )
    found = Findings()
    check_parties(probe, found, store.buyer_checksum_policy, store.buyer_checksum_policy)
    errors = [v for v in found.errors if v.field.startswith("buyer.")]
    warnings = tuple(v for v in found.warnings if v.field.startswith("buyer."))
    return by_field(errors), warnings


class TitleRequests:
    def __init__(
        self,
        *,
        ledger: TitleLedgerPort,
        stores: TitleStorePort,
        taxcodes: TitleTaxCodePort,
        fix: FixPort,
        retitle: Callable[[str], object] | None = None,
    ) -> None:
        #: 换开 (``chalicelib.services.retitle.Retitle.from_title_change``): started once a change after
        #: issue is recorded; None leaves it recorded for the shop
        self.retitle = retitle
        self.ledger = ledger
        self.stores = stores
        self.taxcodes = taxcodes
        self.fix = fix

    def submit(self, link: LinkView, form: TitleForm, *, now: float) -> TitleResult:
        store = self.stores.get(link.store_id)
        errors, warnings = check_title(form, store)
        if errors:
            return TitleResult(Outcome.INVALID, errors, warnings)
        record = self.ledger.get_order(link.order_key)
        if record is None:
            return TitleResult(Outcome.CONFLICT)
        buyer = {"title": form.title, "tax_id": form.tax_id, "type": BuyerType.COMPANY.value}
        status = page_status(record)
        if status is PageStatus.NEEDS_CORRECTION:
            fixed = self.fix(link.order_key, {"buyer": buyer}, by=SOURCE)
            if fixed.ok:
                return TitleResult(Outcome.APPLIED, warnings=warnings)
            if fixed.violations:
                return TitleResult(Outcome.INVALID, by_field(fixed.violations), warnings)
            return TitleResult(Outcome.CONFLICT)
        if status not in {PageStatus.ISSUED, PageStatus.PENDING, PageStatus.WITH_SHOP}:
            return TitleResult(Outcome.REFUSED)
        if record.status in RETITLABLE:
            applied = self._retitle(record, store, buyer, form, now)
            if applied == {}:
                return TitleResult(Outcome.APPLIED, warnings=warnings)
            if applied:
                return TitleResult(Outcome.INVALID, applied, warnings)
            record = self.ledger.get_order(link.order_key) or record  # a worker took it: after issue
        stage = "with_shop" if page_status(record) is PageStatus.WITH_SHOP else "after_issue"
        written = self.ledger.revise(
            record.order_key,
            revision=record.number("revision"),
            statuses=frozenset({record.status}),
            now=now,
            fields={"title_change": _change(form, now, stage)},
        )
        if not written.ok:
            return TitleResult(Outcome.CONFLICT)
        if stage == "after_issue" and self.retitle is not None and record.status is OrderStatus.ISSUED:
            self.retitle(record.order_key)  # the red reversal is queued; the page says 换开处理中
        return TitleResult(Outcome.CHANGE_REQUESTED if stage == "after_issue" else Outcome.RECORDED, warnings=warnings)

    def _retitle(
        self, record: OrderRecord, store: Store, buyer: dict[str, str], form: TitleForm, now: float
    ) -> dict[str, list[Violation]] | None:
        """The payload with the new buyer, in one compare-and-set write: {} when written, the
        order's errors when it no longer passes, None when the record moved on meanwhile."""
        merged, _ = merge(record.payload.get("event") or {}, {"buyer": buyer})
        try:
            event = PaymentEvent.model_validate(merged)
        except ValidationError:
            return None
        found = assess(store, event, self.taxcodes.current)
        if found.errors:
            return by_field(found.errors)
        written = self.ledger.revise(
            record.order_key,
            revision=record.number("revision"),
            statuses=frozenset({record.status}),
            now=now,
            fields={"title_change": _change(form, now, "before_issue")},
            payload=found.payload,
        )
        return {} if written.ok else None


def _change(form: TitleForm, now: float, stage: str) -> str:
    requested = datetime.fromtimestamp(now, UTC).isoformat()
    change = {"title": form.title, "tax_id": form.tax_id, "requested_at": requested, "source": "link", "stage": stage}
    return json.dumps(change, ensure_ascii=False)
