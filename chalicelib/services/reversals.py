"""What a blue invoice's page and the store API show of its reversals: each red invoice issued against
it (number, date, amount) and the net amount left.

Read from the blue record's refund book (``chalicelib.domain.red_allocation.RefundBook``): only red
invoices actually **issued** count (``red_invoices``), never reservations still in the red flow; the
date is the refund record's ``issued_at`` (China time), the amount what its book entry reversed
(negative, as the red invoice prints it). Net = the blue's 价税合计 − what issued red invoices reversed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from chalicelib.domain.china_time import china_date
from chalicelib.domain.red_allocation import RefundBook
from chalicelib.services.ports import OrderRecord

_ZERO = Decimal(0)


@dataclass(frozen=True)
class Reversal:
    number: str  # the red invoice's 20 digits
    date: str | None  # YYYY-MM-DD, China time
    amount: Decimal  # negative: what it reversed (tax included)
    refund_key: str

    def as_dict(self) -> dict[str, str | None]:
        return {"number": self.number, "date": self.date, "amount": f"{self.amount:.2f}", "refund_key": self.refund_key}


def blue_total(record: OrderRecord) -> Decimal | None:
    order = record.payload.get("order") or {}
    try:
        value = order.get("total")
        return Decimal(str(value)) if value not in (None, "") else None
    except InvalidOperation:
        return None


def reversals(record: OrderRecord, read: Callable[[Sequence[str]], Sequence[OrderRecord]]) -> tuple[Reversal, ...]:
    """The red invoices issued against the blue ``record`` (``read``: refund records by key), by date."""
    book = RefundBook.of(record.fields)
    if not book.red_invoices:
        return ()
    found = {r.order_key: r for r in read(sorted(book.red_invoices))}
    out = [
        Reversal(
            number=number,
            date=china_date(found[key].text("issued_at")) if key in found else None,
            amount=-sum(book.entries.get(key, {}).values(), _ZERO),
            refund_key=key,
        )
        for key, number in book.red_invoices.items()
    ]
    return tuple(sorted(out, key=lambda r: (r.date or "", r.number)))


def net_amount(record: OrderRecord) -> Decimal | None:
    """The blue's total less what red invoices issued against it reversed (None without a total)."""
    total = blue_total(record)
    return None if total is None else total - RefundBook.of(record.fields).issued_total()
