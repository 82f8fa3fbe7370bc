"""The receivables export: one row per invoice and per reversal of the month, for accounting software.

A row is an invoice issued in the month (by its issue time, local day): a blue invoice (``kind``
``invoice``, positive amounts) or a red one (``reversal``, negative amounts, with the number of the
invoice it reverses). Columns: :data:`COLUMNS`, each described in docs/finance.md. The buyer's tax
id is given in full: the receivable is booked against it (this file is for finance, not for logs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chalicelib.domain.order_state import OrderStatus
from chalicelib.reports.facts import Fact, plain, rate_text
from chalicelib.reports.month import Month

COLUMNS = (
    "date",
    "invoice_number",
    "kind",
    "original_number",
    "buyer_name",
    "buyer_tax_id",
    "amount_excl_tax",
    "tax",
    "total",
    "tax_rates",
    "order_id",
    "store",
    "order_key",
)
INVOICE, REVERSAL = "invoice", "reversal"


@dataclass(frozen=True)
class Receivable:
    date: str
    invoice_number: str
    kind: str
    original_number: str
    buyer_name: str
    buyer_tax_id: str
    amount_excl_tax: str
    tax: str
    total: str
    tax_rates: str
    order_id: str
    store: str
    order_key: str

    def row(self) -> list[str]:
        return [str(getattr(self, c)) for c in COLUMNS]


def receivables(month: Month, facts: Sequence[Fact]) -> list[Receivable]:
    rows: list[Receivable] = []
    for f in facts:
        if f.status not in (OrderStatus.ISSUED, OrderStatus.RED_ISSUED) or not month.contains(f.issued_at):
            continue
        assert f.issued_at is not None
        rows.append(
            Receivable(
                date=month.local_day(f.issued_at).isoformat(),
                invoice_number=f.invoice_number,
                kind=REVERSAL if f.is_red else INVOICE,
                original_number=f.original_number,
                buyer_name=f.buyer_name,
                buyer_tax_id=f.buyer_tax_id,
                amount_excl_tax=plain(f.amount),
                tax=plain(f.tax),
                total=plain(f.total),
                tax_rates=";".join(rate_text(r) for r in f.rates),
                order_id=f.order_id,
                store=f.store_id,
                order_key=f.order_key,
            )
        )
    return sorted(rows, key=lambda r: (r.date, r.invoice_number, r.order_key))
