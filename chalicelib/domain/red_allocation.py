"""What refunds take from a blue order: the refund book, the allocation rule, the red order, the reduced blue.

Pure (no I/O, no clock). The service (``chalicelib/services/red.py``) reads the blue record, asks this
module what a refund takes, and writes the new book with one compare-and-set (``OrderLedger.revise``):
the **conditional counter** — two refunds of one order never both spend the same yuan, and a refund
replayed after a crash finds its own entry and spends nothing twice.

The book (blue record fields, all text): ``refund_book`` — JSON ``{refund key: {line no: total}}``,
positive tax-inclusive yuan per line of the issued invoice (1-based, as ``InvoiceLine.original_line_no``)
reversed or reserved by red invoices; ``netted_book`` — the same for refunds before issue (per line of
the original order); ``refunded_total`` (both), ``netted_total`` and ``refunded_lines`` (red, per line)
— the sums, for people and the CLI; ``red_invoices`` — JSON ``{refund key: red invoice number}``.
Σ per line ≤ the blue line (net of its discount) and Σ ≤ the blue total, always:
:func:`allocate_refund` refuses anything more.

**The allocation rule** (documented in ``docs/issuing.md``):

1. The platform names the refunded lines (``PaymentEvent.lines`` on a refund) and every one matches a
   blue goods line (by SKU, else by goods name) and their totals do not exceed the refund: each takes
   exactly its total (a line that would exceed what is left on it is an over-refund); the rest of the
   refund (shipping, fees the platform did not itemise) is spread as in 2 over what is left.
2. Otherwise the refund is spread over the blue goods lines (net of their discount lines, in their
   original order) in proportion to what each has left, with the rounding residual carried from line
   to line (:func:`chalicelib.domain.amounts.allocate`): the parts add up to the refund exactly and no
   line gets more than it has left.

A line taken whole is mirrored exactly (quantity, unit price); a part of a line is an amount-only red
line whose tax is carried per rate (尾差). Alipay's ``refund_fee`` is the total refunded so far
(``PaymentEvent.refund_cumulative``): this refund is that minus what the order's other refunds took
(:func:`refund_amount`). Refunds before issue are kept apart (``netted_book``, per line of the
original order): the invoice issued already left them out, so red entries never count them again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from chalicelib.domain.amounts import allocate
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.models import EventLine, InvoiceColour, InvoiceLine, InvoiceOrder, PaymentEvent, RedReason
from chalicelib.domain.money import q2
from chalicelib.domain.normalise_lines import _group_taxes
from chalicelib.domain.normalise_red import _net_lines, _NetLine, _red_lines
from chalicelib.domain.validation import violation

_ZERO = Decimal(0)


def _money(value: Decimal) -> str:
    return f"{q2(value):.2f}"


@dataclass(frozen=True)
class RefundBook:
    """The refunds recorded on one blue record (see the module docstring).

    ``entries``: what each refund reversed (or reserved) by red invoice, per line of the *issued*
    invoice; ``netted``: what each refund took before the invoice was issued, per line of the original
    order (``payload.original_order``) — already reflected in the invoice issued, so never counted
    against it again, but part of what the order had refunded (Alipay's cumulative ``refund_fee``)."""

    entries: dict[str, dict[int, Decimal]] = field(default_factory=dict)
    red_invoices: dict[str, str] = field(default_factory=dict)
    revision: int = 0
    netted: dict[str, dict[int, Decimal]] = field(default_factory=dict)

    @classmethod
    def of(cls, fields: Mapping[str, str | int]) -> RefundBook:
        def book(name: str) -> dict[str, dict[int, Decimal]]:
            raw = fields.get(name)
            return {
                key: {int(no): Decimal(v) for no, v in lines.items()}
                for key, lines in (json.loads(str(raw)) if raw else {}).items()
            }

        reds = fields.get("red_invoices")
        revision = fields.get("revision", 0)
        return cls(
            book("refund_book"),
            dict(json.loads(str(reds))) if reds else {},
            revision if isinstance(revision, int) else 0,
            book("netted_book"),
        )

    def knows(self, refund_key: str) -> bool:
        return refund_key in self.entries or refund_key in self.netted

    def total(self, *, excluding: str | None = None) -> Decimal:
        """What the order's refunds took, netted before issue or reversed after (without ``excluding``)."""
        both = [*self.entries.items(), *self.netted.items()]
        return sum((sum(v.values(), _ZERO) for k, v in both if k != excluding), _ZERO)

    def by_line(self, *, excluding: str | None = None, netted: bool = False) -> dict[int, Decimal]:
        """Per line, what the red entries (or, with ``netted``, the entries netted before issue) took."""
        done: dict[int, Decimal] = {}
        for key, lines in (self.netted if netted else self.entries).items():
            if key == excluding:
                continue
            for no, amount in lines.items():
                done[no] = done.get(no, _ZERO) + amount
        return done

    def reversed_total(self, *, excluding: str | None = None) -> Decimal:
        """What the red entries took of the issued invoice (reserved or issued)."""
        return sum(self.by_line(excluding=excluding).values(), _ZERO)

    def issued_total(self) -> Decimal:
        """What red invoices already issued reversed of the issued invoice (for pages and reports)."""
        return sum((sum(v.values(), _ZERO) for k, v in self.entries.items() if k in self.red_invoices), _ZERO)

    def with_entry(self, refund_key: str, shares: Mapping[int, Decimal], *, netted: bool = False) -> RefundBook:
        entries, nets = dict(self.entries), dict(self.netted)
        (nets if netted else entries)[refund_key] = {no: q2(v) for no, v in shares.items() if v > 0}
        return RefundBook(entries, self.red_invoices, self.revision, nets)

    def with_red_invoice(self, refund_key: str, number: str) -> RefundBook:
        return RefundBook(self.entries, {**self.red_invoices, refund_key: number}, self.revision, self.netted)

    def fields(self) -> dict[str, str]:
        """The blue record's text fields for this book."""

        def dump(entries: dict[str, dict[int, Decimal]]) -> str:
            book = {k: {str(no): _money(v) for no, v in sorted(ls.items())} for k, ls in sorted(entries.items())}
            return json.dumps(book, ensure_ascii=False, separators=(",", ":"))

        lines = {str(no): _money(v) for no, v in sorted(self.by_line().items())}
        out = {
            "refund_book": dump(self.entries),
            "refunded_total": _money(self.total()),
            "refunded_lines": json.dumps(lines, separators=(",", ":")),
        }
        if self.netted:
            out["netted_book"] = dump(self.netted)
            out["netted_total"] = _money(sum((sum(v.values(), _ZERO) for v in self.netted.values()), _ZERO))
        if self.red_invoices:
            out["red_invoices"] = json.dumps(dict(sorted(self.red_invoices.items())), separators=(",", ":"))
        return out


def refund_amount(event: PaymentEvent, book: RefundBook, refund_key: str) -> Decimal:
    """This refund's amount: the event's, or — where the platform reports the total refunded so far
    (Alipay ``refund_fee``) — that total minus what the order's other refunds took (never below 0: a
    notify overtaken by a later one has nothing left to reverse)."""
    amount = q2(event.refund_amount) if event.refund_amount is not None else _ZERO
    if event.refund_cumulative:
        return max(_ZERO, amount - book.total(excluding=refund_key))
    return amount


def _over(field_name: str, already: Decimal, refund: Decimal, total: Decimal) -> ValidationFailed:
    return ValidationFailed(
        [
            violation(
                field_name,
                "refund_exceeds_invoice",
                reversed=_money(already),
                refund=_money(refund),
                total=_money(total),
            )
        ]
    )


def _named(net: Sequence[_NetLine], lines: Sequence[EventLine]) -> dict[int, Decimal] | None:
    """The blue line each refunded line names (SKU, else goods name); None when one matches nothing."""
    found: dict[int, Decimal] = {}
    for line in lines:
        match = next((n for n in net if line.sku and n.line.sku == line.sku), None) or next(
            (n for n in net if line.name and line.name in (n.line.name, n.line.display_name)), None
        )
        if match is None:
            return None
        found[match.line_no] = found.get(match.line_no, _ZERO) + q2(line.total)
    return found


def allocate_refund(
    blue: InvoiceOrder,
    book: RefundBook,
    refund_key: str,
    amount: Decimal,
    named: Sequence[EventLine] = (),
    *,
    netted: bool = False,
) -> dict[int, Decimal]:
    """Blue line no → what this refund takes from it (positive, adds up to ``amount``); raises
    ValidationFailed (``refund_exceeds_invoice``) when the refund is more than what is left. ``blue``
    is the issued invoice (red entries count against it) or, with ``netted``, the original order of a
    blue not issued yet (the netted entries count against it)."""
    net = _net_lines(blue)
    done = book.by_line(excluding=refund_key, netted=netted)
    already = sum(done.values(), _ZERO)
    left = {n.line_no: n.total - done.get(n.line_no, _ZERO) for n in net}
    if amount <= 0:
        raise ValidationFailed([violation("refund_amount", "refund_amount_not_positive")])
    if amount > sum(left.values(), _ZERO):
        raise _over("refund_amount", already, amount, blue.total)
    shares = dict.fromkeys(left, _ZERO)
    exact = _named(net, named) if named else None
    if exact is not None and sum(exact.values(), _ZERO) <= amount:
        for no, value in exact.items():
            if value > left[no]:
                index = next(i for i, n in enumerate(net) if n.line_no == no)
                raise _over(f"lines[{index}].total", done.get(no, _ZERO), value, net[index].total)
            shares[no] = value
        rest = amount - sum(exact.values(), _ZERO)
        if rest > 0:
            remaining = [left[n.line_no] - shares[n.line_no] for n in net]
            for n, part in zip(net, allocate(rest, remaining), strict=True):
                shares[n.line_no] += part
    else:
        for n, part in zip(net, allocate(amount, [left[n.line_no] for n in net]), strict=True):
            shares[n.line_no] = part
    return {no: v for no, v in shares.items() if v > 0}


def red_order(blue: InvoiceOrder, refund_key: str, shares: Mapping[int, Decimal], *, reason: RedReason) -> InvoiceOrder:
    """The red invoice for ``shares`` of ``blue`` (negative lines naming their blue lines). The form id
    and the blue number's issue date are the service's to set."""
    net = _net_lines(blue)
    lines = _red_lines(net, [shares.get(n.line_no, _ZERO) for n in net])
    return InvoiceOrder(
        order_key=refund_key,
        store_id=blue.store_id,
        order_id=blue.order_id,
        colour=InvoiceColour.RED,
        invoice_type=blue.invoice_type,
        seller=blue.seller,
        buyer=blue.buyer,
        lines=tuple(lines),
        total_amount=sum((ln.amount for ln in lines), _ZERO),
        total_tax=sum((ln.tax for ln in lines), _ZERO),
        total=sum((ln.total for ln in lines), _ZERO),
        issuer=blue.issuer,
        reviewer=blue.reviewer,
        payee=blue.payee,
        red_reason=reason,
    )


def reduced_blue(original: InvoiceOrder, refunded: Mapping[int, Decimal]) -> InvoiceOrder | None:
    """The blue order net of refunds made before it was issued (``refunded``: blue line no → total
    taken), or None when nothing is left (the blue is cancelled). A line taken whole is dropped (with
    its discount line); a line taken in part becomes one amount-only line of what is left (its
    discount netted in), taxes carried per rate; untouched lines stay as they were."""
    net = {n.line_no: n for n in _net_lines(original)}
    partial = [(no, n) for no, n in net.items() if 0 < refunded.get(no, _ZERO) < n.total]
    taxes = dict(
        zip(
            (no for no, _ in partial),
            _group_taxes([(n.line.tax_rate, n.total - refunded[no]) for no, n in partial], inclusive=True),
            strict=True,
        )
    )
    lines: list[InvoiceLine] = []
    skip_discount = False
    for index, line in enumerate(original.lines):
        no = index + 1
        if line.is_discount:
            if not skip_discount:
                lines.append(line)
            continue
        skip_discount = False
        taken = refunded.get(no, _ZERO)
        n = net.get(no)
        if n is None or taken <= 0:
            lines.append(line)
            continue
        skip_discount = True
        if taken >= n.total:
            continue
        left, tax = n.total - taken, taxes[no]
        lines.append(
            line.model_copy(
                update={"quantity": None, "unit_price": None, "amount": left - tax, "tax": tax, "total": left}
            )
        )
    if not lines or sum((ln.total for ln in lines), _ZERO) <= 0:
        return None
    return original.model_copy(
        update={
            "lines": tuple(lines),
            "total_amount": sum((ln.amount for ln in lines), _ZERO),
            "total_tax": sum((ln.tax for ln in lines), _ZERO),
            "total": sum((ln.total for ln in lines), _ZERO),
        }
    )
