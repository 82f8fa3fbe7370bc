"""Domain-side builders for ``InvoiceOrder`` (blue, red mirror, red form request) and hypothesis
strategies of valid and subtly invalid orders, shared by the client ↔ sandbox tests. No tests here.

Tax codes come only from codes present in *both* the domain table (``chalicelib/domain/data``) and the
sandbox's own table (``chalicelib/sandbox/taxcodes.json``), with a rate both tables allow for the code
(:func:`shared_codes`): the two tables are independent curated samples and may differ.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from chalicelib.domain.models import (
    BuyerType,
    InvoiceBuyer,
    InvoiceColour,
    InvoiceLine,
    InvoiceOrder,
    InvoiceType,
    Party,
    RedReason,
)
from chalicelib.domain.order_keys import order_key, parse_order_key
from chalicelib.domain.taxcodes import TaxCodeTable
from chalicelib.taxapi.base import RedFormRequest
from tests.support.sandbox_clients import BUYER_CO, SELLER

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_TAXCODES = ROOT / "chalicelib" / "sandbox" / "taxcodes.json"

SELLER_NAME = "沙箱测试销方"
COMPANY_NAME = "浙江诺诺网络科技有限公司"
CATERING = "3070401000000000000"  # 餐饮服务 / 餐饮服务 in both tables
SOFTWARE_DEV = "3040201010000000000"  # 软件开发服务 / 信息技术服务 in both tables
CENT = Decimal("0.01")


def q2(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# --- shared tax codes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SharedCode:
    code: str
    short_name: str
    rates: tuple[Decimal, ...]  # non-zero rates allowed by both tables


@cache
def domain_table() -> TaxCodeTable:
    return TaxCodeTable.default()


@cache
def shared_codes() -> tuple[SharedCode, ...]:
    """Codes in both tables with the same short name; rates = the non-zero rates both allow."""
    raw = json.loads(SANDBOX_TAXCODES.read_text(encoding="utf-8"))["codes"]
    shared = []
    for item in raw:
        entry = domain_table().lookup(item["ssflbm"])
        if entry is None or entry.short_name != item["sphfwjc"]:
            continue
        rates = sorted((Decimal(r) for r in item["sl"] if Decimal(r) in entry.rates and Decimal(r) != 0), reverse=True)
        if rates:
            shared.append(SharedCode(item["ssflbm"], entry.short_name, tuple(rates)))
    assert shared, "the domain and sandbox tax code tables share no code"
    return tuple(shared)


def short_name_of(code: str) -> str:
    entry = domain_table().lookup(code)
    assert entry is not None, code
    return entry.short_name


# --- builders --------------------------------------------------------------------------------------


def seller() -> Party:
    return Party(name=SELLER_NAME, tax_id=SELLER)


def company_buyer(tax_id: str = BUYER_CO, name: str = COMPANY_NAME) -> InvoiceBuyer:
    return InvoiceBuyer(name=name, tax_id=tax_id, type=BuyerType.COMPANY)


def individual_buyer(name: str = "个人") -> InvoiceBuyer:
    return InvoiceBuyer(name=name, type=BuyerType.INDIVIDUAL)


def line(
    amount: str | Decimal,
    rate: str | Decimal = "0.06",
    *,
    code: str = CATERING,
    name: str = "工作餐",
    quantity: str | Decimal | None = "1",
    **over: Any,
) -> InvoiceLine:
    """A blue line: tax = round(amount × rate), unit price = amount / quantity (exact here)."""
    a, r = Decimal(amount), Decimal(rate)
    tax = q2(a * r)
    qty = None if quantity is None else Decimal(quantity)
    price = None if qty is None else (a / qty).quantize(Decimal("0.00000001"), rounding=ROUND_HALF_UP).normalize()
    values: dict[str, Any] = {
        "name": name,
        "short_name": short_name_of(code),
        "tax_code": code,
        "tax_rate": r,
        "quantity": qty,
        "unit": "次",
        "unit_price": price,
        "amount": a,
        "tax": tax,
        "total": a + tax,
    }
    values.update(over)
    return InvoiceLine(**values)


def order(
    lines: list[InvoiceLine] | tuple[InvoiceLine, ...] | None = None,
    *,
    order_id: str = "A1",
    buyer: InvoiceBuyer | None = None,
    **over: Any,
) -> InvoiceOrder:
    """A blue order; totals are the line sums unless overridden."""
    lines = tuple(lines if lines is not None else (line("100.00"),))
    values: dict[str, Any] = {
        "order_key": order_key("shop-1", "standard", order_id),
        "store_id": "shop-1",
        "order_id": order_id,
        "seller": seller(),
        "buyer": buyer or company_buyer(),
        "lines": lines,
        "total_amount": sum((ln.amount for ln in lines), Decimal(0)),
        "total_tax": sum((ln.tax for ln in lines), Decimal(0)),
        "total": sum((ln.total for ln in lines), Decimal(0)),
        "issuer": "张三",
    }
    values.update(over)
    return InvoiceOrder(**values)


def red_mirror(
    blue: InvoiceOrder,
    *,
    original_invoice_number: str,
    original_issued_at: datetime,
    red_form_id: str | None = None,
    reason: RedReason = RedReason.RETURN,
) -> InvoiceOrder:
    """The full reversal of ``blue`` (no discount lines in it): every line negated, numbered."""
    assert not any(ln.is_discount for ln in blue.lines)
    paid = parse_order_key(blue.order_key)
    lines = tuple(
        ln.model_copy(
            update={
                "quantity": None if ln.quantity is None else -ln.quantity,
                "amount": -ln.amount,
                "tax": -ln.tax,
                "total": -ln.total,
                "original_line_no": i,
            }
        )
        for i, ln in enumerate(blue.lines, 1)
    )
    return blue.model_copy(
        update={
            "order_key": order_key(paid.store_id, paid.platform, paid.order_id, "1"),
            "colour": InvoiceColour.RED,
            "lines": lines,
            "total_amount": -blue.total_amount,
            "total_tax": -blue.total_tax,
            "total": -blue.total,
            "original_invoice_number": original_invoice_number,
            "original_issued_at": original_issued_at,
            "red_reason": reason,
            "red_form_id": red_form_id,
        }
    )


def red_form_request(serial: str, red: InvoiceOrder) -> RedFormRequest:
    assert red.original_invoice_number and red.original_issued_at and red.red_reason
    return RedFormRequest(
        serial=serial,
        original_invoice_number=red.original_invoice_number,
        original_issued_at=red.original_issued_at,
        reason=red.red_reason,
        seller_tax_id=red.seller.tax_id or "",
        buyer_name=red.buyer.name,
        buyer_tax_id=red.buyer.tax_id,
        order=red,
    )


# --- hypothesis: valid orders and subtle mutations -------------------------------------------------

#: Valid 18-character USCCs (GB 32100 check character right).
GOOD_USCCS = ("91330106MA2AYNWD8M", "91350100M000100Y43", "91110000802100433B")
MUTATIONS = (
    "none",
    "tax_off_by_cent_total",  # hjse one cent off the line sum (declared total ≠ Σ)
    "line_tax_over_tolerance",  # a line's tax 0.07 off amount × rate (amount/total kept consistent)
    "line_sum_off",  # a line's total ≠ amount + tax
    "wrong_rate_for_code",  # a VAT rate the code does not allow in either table
    "unknown_rate",  # not a VAT rate at all
    "unknown_code",  # a 19-digit code in neither table
    "bad_tax_id_format",  # lower case / wrong length
    "uscc_checksum",  # 18 characters, right format, wrong check character
    "long_remark",  # 231 characters
    "long_buyer_name",  # 101 characters
    "company_without_tax_id",
    "special_without_tax_id",
    "discount_larger_than_line",
    "discount_rate_mismatch",
    "discount_first",
    "discount_positive",
    "price_quantity_off",  # unit price × quantity 0.02 away from the amount
    "zero_rate_without_flag",
    "invoice_tax_drift",  # every line +0.05 tax: lines within 0.06, invoice beyond 1.27
    # Once disagreements (the validator accepted, the sandbox refused); the validator now refuses both.
    "code_mismatch_on_discount",  # a discount line with another tax code than its line
    "short_name_mismatch",  # *简称* not the code table's short name
)

money_st = st.decimals(min_value=Decimal("0.50"), max_value=Decimal("300.00"), places=2)
names_st = st.sampled_from(("工作餐", "午餐套餐", "软件开发", "定制开发服务", "会员服务"))


@st.composite
def base_lines(draw: st.DrawFn, *, count: st.SearchStrategy[int] | None = None) -> list[InvoiceLine]:
    n = draw(count or st.integers(1, 4))
    lines: list[InvoiceLine] = []
    for _ in range(n):
        shared = draw(st.sampled_from(shared_codes()))
        rate = draw(st.sampled_from(shared.rates))
        amount = draw(money_st)
        qty = draw(st.sampled_from(("1", "2", "4", None)))
        if qty is not None:
            # keep unit price × quantity exact: amount divisible by the quantity in cents
            cents = int(amount * 100)
            cents -= cents % int(qty)
            amount = Decimal(max(cents, int(qty))) / 100
        base = line(amount, rate, code=shared.code, name=draw(names_st), quantity=qty)
        lines.append(base)
        if draw(st.integers(0, 4)) == 0 and base.amount >= Decimal("2.00"):
            lines.append(discount_for(base, draw(st.decimals(Decimal("0.01"), base.amount / 2, places=2))))
    return lines


def discount_for(target: InvoiceLine, amount: Decimal) -> InvoiceLine:
    """A discount line of ``amount`` (excl. tax) for ``target``."""
    tax = q2(amount * target.tax_rate)
    return target.model_copy(
        update={
            "quantity": None,
            "unit_price": None,
            "amount": -amount,
            "tax": -tax,
            "total": -(amount + tax),
            "is_discount": True,
        }
    )


@st.composite
def orders_with_mutation(draw: st.DrawFn, only: str | None = None) -> tuple[str, InvoiceOrder]:
    """(mutation name, order): the order is valid for "none", otherwise broken in that one way.

    ``only`` pins the mutation (deterministic examples per rule)."""
    # about a third of the draws are valid orders: the "validator accepts ⇒ sandbox accepts" half
    mutation = only or draw(st.sampled_from(("none",) * 9 + MUTATIONS[1:]))
    lines = draw(base_lines())
    buyer = draw(
        st.one_of(
            st.sampled_from(GOOD_USCCS).map(company_buyer),
            st.just(individual_buyer()),
        )
    )
    extra: dict[str, Any] = {"remark": draw(st.sampled_from((None, "订单号 A1", "x" * 230)))}
    if mutation == "tax_off_by_cent_total":
        total_tax = sum((ln.tax for ln in lines), Decimal(0)) + draw(st.sampled_from((CENT, -CENT)))
        extra["total_tax"] = total_tax
        extra["total"] = sum((ln.amount for ln in lines), Decimal(0)) + total_tax
    elif mutation in ("line_tax_over_tolerance", "line_sum_off", "wrong_rate_for_code", "unknown_rate"):
        i = draw(st.sampled_from([i for i, ln in enumerate(lines) if not ln.is_discount]))
        ln = lines[i]
        if mutation == "line_tax_over_tolerance":
            tax = ln.tax + Decimal("0.07")
            lines[i] = ln.model_copy(update={"tax": tax, "total": ln.amount + tax})
        elif mutation == "line_sum_off":
            lines[i] = ln.model_copy(update={"total": ln.total + CENT})
        else:
            rate = Decimal("0.13") if mutation == "wrong_rate_for_code" else Decimal("0.07")
            if ln.tax_rate == rate:
                rate = Decimal("0.09")
            tax = q2(ln.amount * rate)
            new = ln.model_copy(update={"tax_rate": rate, "tax": tax, "total": ln.amount + tax})
            lines[i] = new
            if i + 1 < len(lines) and lines[i + 1].is_discount:  # keep the discount consistent with its line
                d = lines[i + 1]
                dtax = q2(d.amount * rate)
                lines[i + 1] = d.model_copy(update={"tax_rate": rate, "tax": dtax, "total": d.amount + dtax})
    elif mutation == "unknown_code":
        lines = [ln.model_copy(update={"tax_code": "3999999999999999999"}) for ln in lines]
    elif mutation == "bad_tax_id_format":
        buyer = company_buyer(draw(st.sampled_from(("91330106ma2aynwd8m", "9133010", "91330106MA2AYNWD8M-1"))))
    elif mutation == "uscc_checksum":
        buyer = company_buyer("91330106MA2AYNWD8A")
    elif mutation == "long_remark":
        extra["remark"] = "备" * 231
    elif mutation == "long_buyer_name":
        buyer = company_buyer(name="公" * 101)
    elif mutation == "company_without_tax_id":
        buyer = InvoiceBuyer(name=COMPANY_NAME, type=BuyerType.COMPANY)
    elif mutation == "special_without_tax_id":
        buyer = individual_buyer()
        extra["invoice_type"] = InvoiceType.SPECIAL
    elif mutation.startswith("discount_"):
        target = line("100.00", "0.06", code=CATERING)
        if mutation == "discount_larger_than_line":
            disc = discount_for(target, Decimal("100.01"))
            lines = [*lines, target, disc]
        elif mutation == "discount_rate_mismatch":
            disc = discount_for(target.model_copy(update={"tax_rate": Decimal("0.03")}), Decimal("10.00"))
            lines = [*lines, target, disc]
        elif mutation == "discount_first":
            lines = [discount_for(target, Decimal("10.00")), target, *lines]
        else:  # discount_positive
            disc = discount_for(target, Decimal("10.00"))
            disc = disc.model_copy(update={"amount": -disc.amount, "tax": -disc.tax, "total": -disc.total})
            lines = [*lines, target, disc]
    elif mutation == "code_mismatch_on_discount":
        target = line("100.00", "0.06", code=CATERING)
        other = line("10.00", "0.06", code=SOFTWARE_DEV, name=target.name)
        lines = [*lines, target, discount_for(other, Decimal("10.00"))]
    elif mutation == "short_name_mismatch":
        i = draw(st.integers(0, len(lines) - 1))
        lines = [
            ln.model_copy(update={"short_name": "现代服务"}) if j == i or (ln.is_discount and j == i + 1) else ln
            for j, ln in enumerate(lines)
        ]
    elif mutation == "price_quantity_off":
        i = draw(st.sampled_from([i for i, ln in enumerate(lines) if not ln.is_discount]))
        ln = lines[i]
        lines[i] = ln.model_copy(update={"quantity": Decimal(1), "unit_price": ln.amount + Decimal("0.02")})
    elif mutation == "zero_rate_without_flag":
        i = draw(st.sampled_from([i for i, ln in enumerate(lines) if not ln.is_discount]))
        ln = lines[i]
        lines[i] = ln.model_copy(update={"tax_rate": Decimal(0), "tax": Decimal(0), "total": ln.amount})
        if i + 1 < len(lines) and lines[i + 1].is_discount:
            d = lines[i + 1]
            lines[i + 1] = d.model_copy(update={"tax_rate": Decimal(0), "tax": Decimal(0), "total": d.amount})
    elif mutation == "invoice_tax_drift":
        # 26 lines of 10.00 at 6 %: tax 0.60 + 0.05 each → every line within 0.06, Σ drift 1.30 > 1.27
        lines = [
            line("10.00", "0.06", code=CATERING).model_copy(update={"tax": Decimal("0.65"), "total": Decimal("10.65")})
            for _ in range(26)
        ]
    return mutation, order(lines, buyer=buyer, **extra)
