"""What a refund takes from a blue order: the allocation rule, the book, the red order, the reduced blue."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.models import EventKind, EventLine, PaymentEvent, RedReason
from chalicelib.domain.order_keys import order_key, red_form_serial, serial_for
from chalicelib.domain.red_allocation import RefundBook, allocate_refund, red_order, reduced_blue, refund_amount
from tests.support import orders

D = Decimal
BLUE = orders.order(
    [
        orders.line("100.00", sku="A", name="咖啡"),
        orders.line("50.00", sku="B", name="蛋糕"),
        orders.line("20.00", "0.13"),
    ]
)  # totals 106.00, 53.00, 22.60 = 181.60
R1, R2, R3 = (order_key("shop-1", "standard", "A1", f"R{i}") for i in (1, 2, 3))


def event(amount: str, *, cumulative: bool = False, lines: tuple[EventLine, ...] = ()) -> PaymentEvent:
    return PaymentEvent(
        platform="standard",
        event_id="e",
        kind=EventKind.REFUNDED,
        order_id="A1",
        amount=D("181.60"),
        refund_id="R",
        refund_amount=D(amount),
        refund_cumulative=cumulative,
        lines=lines,
    )


def test_a_full_refund_mirrors_every_line_exactly() -> None:
    shares = allocate_refund(BLUE, RefundBook(), R1, D("181.60"))
    red = red_order(BLUE, R1, shares, reason=RedReason.RETURN)
    assert red.total == D("-181.60") and red.total_tax == -BLUE.total_tax
    assert [ln.original_line_no for ln in red.lines] == [1, 2, 3]
    assert [ln.quantity for ln in red.lines] == [D(-1)] * 3  # mirrored whole: same quantity, negative


def test_a_partial_refund_is_proportional_with_the_residual_carried() -> None:
    shares = allocate_refund(BLUE, RefundBook(), R1, D("10.00"))
    assert sum(shares.values()) == D("10.00")
    assert shares == {1: D("5.84"), 2: D("2.92"), 3: D("1.24")}  # 106 : 53 : 22.6, cents carried
    red = red_order(BLUE, R1, shares, reason=RedReason.RETURN)
    assert red.total == D("-10.00") and all(ln.quantity is None for ln in red.lines)
    for ln in red.lines:
        assert ln.amount + ln.tax == ln.total and abs(ln.amount * ln.tax_rate - ln.tax) <= D("0.06")


def test_named_lines_are_refunded_exactly_and_the_rest_spread() -> None:
    named = (EventLine(sku="B", total=D("53.00")),)
    assert allocate_refund(BLUE, RefundBook(), R1, D("53.00"), named) == {2: D("53.00")}
    mixed = allocate_refund(BLUE, RefundBook(), R1, D("63.00"), named)  # 53 named + 10 (e.g. shipping)
    assert mixed[2] == D("53.00") and mixed[1] + mixed[3] == D("10.00")  # the rest over what is left
    unknown = (EventLine(sku="ZZZ", total=D("5.00")),)  # names nothing on the blue: proportional
    assert allocate_refund(BLUE, RefundBook(), R1, D("5.00"), unknown) == allocate_refund(
        BLUE, RefundBook(), R1, D("5.00")
    )


def test_repeated_partials_accumulate_up_to_full_and_never_beyond() -> None:
    book = RefundBook()
    for key, amount in ((R1, "100.00"), (R2, "81.00")):
        book = book.with_entry(key, allocate_refund(BLUE, book, key, D(amount)))
    assert book.total() == D("181.00")
    left = {1: D("106.00"), 2: D("53.00"), 3: D("22.60")}
    for no, taken in book.by_line().items():
        assert taken <= left[no]
    last = allocate_refund(BLUE, book, R3, D("0.60"))
    assert sum(last.values()) == D("0.60")
    full = book.with_entry(R3, last)
    assert full.by_line() == left  # exactly the blue, per line
    with pytest.raises(ValidationFailed) as over:
        allocate_refund(BLUE, full, order_key("shop-1", "standard", "A1", "R4"), D("0.01"))
    [v] = over.value.violations
    assert v.code == "refund_exceeds_invoice" and v.message and v.message_en


def test_a_named_line_beyond_what_it_has_left_is_an_over_refund() -> None:
    book = RefundBook().with_entry(R1, {2: D("50.00")})
    with pytest.raises(ValidationFailed) as over:
        allocate_refund(BLUE, book, R2, D("10.00"), (EventLine(sku="B", total=D("10.00")),))
    assert over.value.violations[0].field == "lines[1].total"


def test_a_replayed_refund_does_not_count_itself() -> None:
    book = RefundBook().with_entry(R1, allocate_refund(BLUE, RefundBook(), R1, D("181.60")))
    assert allocate_refund(BLUE, book, R1, D("181.60")) == book.entries[R1]


def test_alipay_refund_fee_is_cumulative() -> None:
    book = RefundBook().with_entry(R1, {1: D("30.00")})
    assert refund_amount(event("50.00", cumulative=True), book, R2) == D("20.00")  # 50 so far, 30 done
    assert refund_amount(event("20.00", cumulative=True), book, R2) == D(0)  # overtaken by a later notify
    assert refund_amount(event("50.00"), book, R2) == D("50.00")  # other platforms: this refund's own


def test_the_book_round_trips_through_the_record_fields() -> None:
    book = RefundBook().with_entry(R1, {1: D("5.84"), 3: D("1.24")}).with_red_invoice(R1, "2" * 20)
    fields: dict[str, str | int] = {**book.fields(), "revision": 3}
    again = RefundBook.of(fields)
    assert again.entries == book.entries and again.red_invoices == book.red_invoices and again.revision == 3
    assert fields["refunded_total"] == "7.08" and fields["refunded_lines"] == '{"1":"5.84","3":"1.24"}'


def test_a_refund_before_issue_reduces_the_blue_or_cancels_it() -> None:
    reduced = reduced_blue(BLUE, {2: D("53.00")})
    assert reduced is not None and [ln.name for ln in reduced.lines] == ["咖啡", "工作餐"]
    assert reduced.total == D("128.60")
    part = reduced_blue(BLUE, {1: D("6.00")})
    assert part is not None and part.lines[0].total == D("100.00") and part.lines[0].quantity is None
    assert part.lines[0].amount + part.lines[0].tax == D("100.00") and part.total == D("175.60")
    assert reduced_blue(BLUE, {1: D("106.00"), 2: D("53.00"), 3: D("22.60")}) is None


def test_form_serials_are_deterministic_and_round_one_is_the_record_serial() -> None:
    assert red_form_serial(R1) == serial_for(R1) and len(red_form_serial(R1, 2)) == 20
    assert red_form_serial(R1, 2) != red_form_serial(R1) and red_form_serial(R1, 2) == red_form_serial(R1, 2)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=18160), min_size=1, max_size=6))
def test_any_sequence_of_refunds_never_exceeds_the_blue(cents: list[int]) -> None:
    book = RefundBook()
    for i, c in enumerate(cents):
        key = order_key("shop-1", "standard", "A1", f"P{i}")
        try:
            shares = allocate_refund(BLUE, book, key, D(c) / 100)
        except ValidationFailed:
            assert book.total() + D(c) / 100 > BLUE.total
            continue
        red = red_order(BLUE, key, shares, reason=RedReason.RETURN)
        assert -red.total == D(c) / 100
        book = book.with_entry(key, shares)
    assert book.total() <= BLUE.total
    nets = {1: D("106.00"), 2: D("53.00"), 3: D("22.60")}
    assert all(v <= nets[no] for no, v in book.by_line().items())


def test_refunds_before_issue_are_not_counted_against_the_invoice_issued() -> None:
    netted = RefundBook().with_entry(R1, {2: D("53.00")}, netted=True)  # line 2 refunded before issue
    issued = reduced_blue(BLUE, netted.by_line(netted=True))
    assert issued is not None and issued.total == D("128.60")
    shares = allocate_refund(issued, netted, R2, D("128.60"))  # the rest, after issue: all of the invoice
    assert sum(shares.values()) == D("128.60") and netted.total() == D("53.00")
    book = netted.with_entry(R2, shares)
    assert book.total() == BLUE.total and book.reversed_total() == issued.total and book.issued_total() == 0
    assert book.with_red_invoice(R2, "3" * 20).issued_total() == issued.total
    assert book.fields()["netted_total"] == "53.00" and book.fields()["refunded_total"] == "181.60"
    with pytest.raises(ValidationFailed):
        allocate_refund(issued, book, R3, D("0.01"))
