"""One test (at least) per violation code: a valid order, broken one rule at a time."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from chalicelib.domain.amounts import split_inclusive
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.models import (
    BuyerType,
    ChecksumPolicy,
    InvoiceBuyer,
    InvoiceColour,
    InvoiceLine,
    InvoiceOrder,
    InvoiceType,
    Party,
    ZeroRateFlag,
)
from chalicelib.domain.taxcodes import TaxCodeTable
from chalicelib.domain.validation import MESSAGES, check, ensure_valid, validate

TABLE = TaxCodeTable.default()
SOFTWARE = "3040201010000000000"
CAKE = "1030201010000000000"  # 糕点, 13 %
RICE = "1010101010000000000"  # 稻谷, 9 % or exempt
SELLER_ID = "91350100M000100Y43"
BUYER_ID = "91110000710929148A"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "invoice-rules.md"


def line(gross: str = "100.00", **overrides: Any) -> InvoiceLine:
    """A valid goods line for a tax-inclusive ``gross``; ``overrides`` then break what a test needs."""
    rate = D(overrides.pop("tax_rate", "0.06"))
    split = split_inclusive(D(gross), rate)
    values: dict[str, Any] = {
        "name": "开票服务",
        "short_name": "信息技术服务",
        "tax_code": SOFTWARE,
        "tax_rate": rate,
        "quantity": D(1),
        "unit_price": split.amount,
        "amount": split.amount,
        "tax": split.tax,
        "total": split.total,
    }
    values.update(overrides)
    return InvoiceLine(**values)


def discount(of: InvoiceLine, total: str) -> InvoiceLine:
    split = split_inclusive(D(total), of.tax_rate)
    return of.model_copy(
        update={
            "quantity": None,
            "unit_price": None,
            "amount": split.amount,
            "tax": split.tax,
            "total": split.total,
            "is_discount": True,
        }
    )


def order(*lines: InvoiceLine, **overrides: Any) -> InvoiceOrder:
    lines = lines or (line(),)
    values: dict[str, Any] = {
        "order_key": "shop-1:o-1",
        "store_id": "shop-1",
        "order_id": "o-1",
        "seller": Party(name="杭州测试科技有限公司", tax_id=SELLER_ID),
        "buyer": InvoiceBuyer(name="个人"),
        "lines": lines,
        "total_amount": sum((ln.amount for ln in lines), D(0)),
        "total_tax": sum((ln.tax for ln in lines), D(0)),
        "total": sum((ln.total for ln in lines), D(0)),
        "issuer": "张三",
    }
    values.update(overrides)
    return InvoiceOrder(**values)


def red(*lines: InvoiceLine, **overrides: Any) -> InvoiceOrder:
    return order(*lines, colour=InvoiceColour.RED, **overrides)


def negative(ln: InvoiceLine, **overrides: Any) -> InvoiceLine:
    values: dict[str, Any] = {
        "amount": -ln.amount,
        "tax": -ln.tax,
        "total": -ln.total,
        "quantity": -ln.quantity if ln.quantity is not None else None,
        "original_line_no": 1,
    }
    values.update(overrides)
    return ln.model_copy(update=values)


def codes(o: InvoiceOrder, **kwargs: Any) -> set[tuple[str, str]]:
    return {(v.field, v.code) for v in validate(o, table=TABLE, **kwargs)}


# --- the baseline --------------------------------------------------------------------------------
def test_a_well_formed_order_has_no_errors_and_no_warnings() -> None:
    report = check(order(line(), line("50.00", name="维护")), table=TABLE)
    assert report.ok
    assert report.errors == () and report.warnings == ()


def test_a_discounted_order_and_a_red_mirror_are_valid() -> None:
    goods = line("100.00")
    assert validate(order(goods, discount(goods, "-10.00")), table=TABLE) == []
    assert validate(red(negative(goods)), table=TABLE) == []


def test_all_violations_are_reported_at_once() -> None:
    broken = order(
        line(tax_rate="0.13", amount=D("1.00")),
        seller=Party(name="", tax_id="bad"),
        remark="备" * 231,
    )
    found = {v.code for v in validate(broken, table=TABLE)}
    assert {"tax_rate_not_allowed", "line_sum_mismatch", "name_required", "tax_id_format", "remark_too_long"} <= found


def test_violations_carry_both_languages() -> None:
    (v,) = validate(order(line(tax_code="123")), table=TABLE)
    assert v.field == "lines[0].tax_code"
    assert v.code == "tax_code_format"
    assert "19" in v.message and "19" in v.message_en
    assert v.as_dict()["message_en"] == v.message_en


# --- one case per code -----------------------------------------------------------------------------
_goods = line("100.00")
_company = InvoiceBuyer(name="北京测试有限公司", type=BuyerType.COMPANY)

CASES: list[tuple[str, Callable[[], InvoiceOrder], dict[str, Any], str, str]] = [
    # (id, order factory, validate kwargs, field, code)
    ("seller id missing", lambda: order(seller=Party(name="卖家")), {}, "seller.tax_id", "seller_tax_id_required"),
    (
        "buyer id 16 chars",
        lambda: order(buyer=InvoiceBuyer(name="买家", tax_id="1" * 16)),
        {},
        "buyer.tax_id",
        "tax_id_format",
    ),
    (
        "seller id lower case",
        lambda: order(seller=Party(name="卖家", tax_id=SELLER_ID.lower())),
        {},
        "seller.tax_id",
        "tax_id_format",
    ),
    (
        "buyer id with inner space",
        lambda: order(buyer=InvoiceBuyer(name="买家", tax_id="91350100M000 00Y43", type=BuyerType.COMPANY)),
        {},
        "buyer.tax_id",
        "tax_id_whitespace",
    ),
    (
        "buyer id letter outside the alphabet",
        lambda: order(buyer=InvoiceBuyer(name="买家", tax_id="91350100M000100I43", type=BuyerType.COMPANY)),
        {},
        "buyer.tax_id",
        "tax_id_alphabet",
    ),
    (
        "seller id letter in the region code",
        lambda: order(seller=Party(name="卖家", tax_id="91MA0100M000100Y4G")),
        {},
        "seller.tax_id",
        "tax_id_region",
    ),
    (
        "buyer checksum rejected",
        lambda: order(buyer=InvoiceBuyer(name="买家", tax_id="91350100M000100Y44", type=BuyerType.COMPANY)),
        {"buyer_checksum_policy": ChecksumPolicy.REJECT},
        "buyer.tax_id",
        "tax_id_checksum",
    ),
    ("company without id", lambda: order(buyer=_company), {}, "buyer.tax_id", "buyer_tax_id_required"),
    (
        "special without buyer id",
        lambda: order(invoice_type=InvoiceType.SPECIAL),
        {},
        "buyer.tax_id",
        "special_invoice_buyer_tax_id",
    ),
    ("buyer name empty", lambda: order(buyer=InvoiceBuyer(name="")), {}, "buyer.name", "name_required"),
    (
        "seller name 101",
        lambda: order(seller=Party(name="卖" * 101, tax_id=SELLER_ID)),
        {},
        "seller.name",
        "name_too_long",
    ),
    (
        "buyer address+phone 101",
        lambda: order(buyer=InvoiceBuyer(name="个人", address="地" * 90, phone="1" * 11)),
        {},
        "buyer.address",
        "address_phone_too_long",
    ),
    (
        "seller bank+account 101",
        lambda: order(seller=Party(name="卖家", tax_id=SELLER_ID, bank="银" * 81, account="6" * 20)),
        {},
        "seller.bank",
        "bank_account_too_long",
    ),
    ("remark 231", lambda: order(remark="备" * 231), {}, "remark", "remark_too_long"),
    ("no lines", lambda: order(lines=(), total_amount=D(0), total_tax=D(0), total=D("1")), {}, "lines", "no_lines"),
    ("2001 lines", lambda: order(*([line("1.00")] * 2001)), {}, "lines", "too_many_lines"),
    ("line name empty", lambda: order(line(name="")), {}, "lines[0].name", "line_name_required"),
    ("code 18 digits", lambda: order(line(tax_code="1" * 18)), {}, "lines[0].tax_code", "tax_code_format"),
    ("code unknown", lambda: order(line(tax_code="1" * 19)), {}, "lines[0].tax_code", "tax_code_unknown"),
    ("rate 7%", lambda: order(line(tax_rate="0.07")), {}, "lines[0].tax_rate", "tax_rate_unknown"),
    ("software at 13%", lambda: order(line(tax_rate="0.13")), {}, "lines[0].tax_rate", "tax_rate_not_allowed"),
    (
        "0% without flag",
        lambda: order(line(tax_code=RICE, short_name="谷物", tax_rate="0")),
        {},
        "lines[0].zero_rate_flag",
        "zero_rate_flag_required",
    ),
    (
        "6% with flag",
        lambda: order(line(zero_rate_flag=ZeroRateFlag.EXEMPT)),
        {},
        "lines[0].zero_rate_flag",
        "zero_rate_flag_unexpected",
    ),
    (
        "0% flag the code does not allow",
        lambda: order(line(tax_code=RICE, short_name="谷物", tax_rate="0", zero_rate_flag=ZeroRateFlag.NOT_TAXABLE)),
        {},
        "lines[0].zero_rate_flag",
        "zero_rate_flag_not_allowed",
    ),
    (
        "amount too large",
        lambda: order(line(amount=D("1E+16"))),
        {},
        "lines[0].amount",
        "money_out_of_range",
    ),
    (
        "tax three decimals",
        lambda: order(line(tax=D("5.660"), total=D("100.000"), amount=D("94.345"))),
        {},
        "lines[0].amount",
        "money_precision",
    ),
    (
        "price 9 decimals",
        lambda: order(line(unit_price=D("94.340000001"))),
        {},
        "lines[0].unit_price",
        "price_precision",
    ),
    ("price without quantity", lambda: order(line(quantity=None)), {}, "lines[0].quantity", "price_quantity_pair"),
    (
        "negative price",
        lambda: order(line(unit_price=D("-94.34"), quantity=D("-1"))),
        {},
        "lines[0].unit_price",
        "unit_price_not_positive",
    ),
    (
        "zero price",  # within 0.01 of the amount: only the price rule refuses it
        lambda: order(line("0.01", unit_price=D(0)), line("10.00")),
        {},
        "lines[0].unit_price",
        "unit_price_not_positive",
    ),
    ("blue negative quantity", lambda: order(line(quantity=D("-1"))), {}, "lines[0].quantity", "quantity_sign"),
    ("red positive quantity", lambda: red(negative(_goods, quantity=D(1))), {}, "lines[0].quantity", "quantity_sign"),
    ("amount + tax != total", lambda: order(line(total=D("100.01"))), {}, "lines[0].total", "line_sum_mismatch"),
    (
        "tax off by 0.07",
        lambda: order(line(tax=D("5.73"), amount=D("94.27"), unit_price=D("94.27"))),
        {},
        "lines[0].tax",
        "line_tax_tolerance",
    ),
    (
        "price × qty off by 0.02",
        lambda: order(line(unit_price=D("94.36"))),
        {},
        "lines[0].unit_price",
        "price_quantity_mismatch",
    ),
    (
        "discount first",
        lambda: order(discount(_goods, "-1.00"), _goods),
        {},
        "lines[0].is_discount",
        "discount_position",
    ),
    (
        "two discounts",
        lambda: order(_goods, discount(_goods, "-1.00"), discount(_goods, "-1.00")),
        {},
        "lines[2].is_discount",
        "discount_multiple",
    ),
    (
        "discount other name",
        lambda: order(_goods, discount(_goods, "-1.00").model_copy(update={"name": "别的"})),
        {},
        "lines[1].name",
        "discount_name_mismatch",
    ),
    (
        "discount other rate",
        lambda: order(_goods, discount(_goods, "-1.00").model_copy(update={"tax_rate": D("0.03")})),
        {},
        "lines[1].tax_rate",
        "discount_rate_mismatch",
    ),
    (
        "discount other code",
        lambda: order(_goods, discount(_goods, "-1.00").model_copy(update={"tax_code": "3070402000000000000"})),
        {},
        "lines[1].tax_code",
        "discount_code_mismatch",
    ),
    (
        "short name not the table's",
        lambda: order(line(short_name="软件")),
        {},
        "lines[0].short_name",
        "short_name_mismatch",
    ),
    (
        "positive discount",
        lambda: order(_goods, discount(_goods, "1.00")),
        {},
        "lines[1].total",
        "discount_not_negative",
    ),
    (
        "discount > line",
        lambda: order(_goods, discount(_goods, "-100.01")),
        {},
        "lines[1].amount",
        "discount_exceeds_line",
    ),
    (
        "discount on red",
        lambda: red(negative(_goods), discount(_goods, "-1.00")),
        {},
        "lines[1].is_discount",
        "discount_on_red",
    ),
    (
        "blue negative line",
        lambda: order(line("-5.00", quantity=None, unit_price=None), line("10.00")),
        {},
        "lines[0].total",
        "blue_line_not_positive",
    ),
    (
        "blue zero total",
        lambda: order(line("0.00", quantity=None, unit_price=None)),
        {},
        "total",
        "blue_total_not_positive",
    ),
    (
        "red positive line",
        lambda: red(negative(_goods), line("1.00", quantity=None, unit_price=None)),
        {},
        "lines[1].total",
        "red_line_not_negative",
    ),
    (
        "red zero line",
        lambda: red(negative(_goods), line("0.00", quantity=None, unit_price=None, original_line_no=2)),
        {},
        "lines[1].total",
        "red_line_not_negative",
    ),
    (
        "red line with zero amount",
        lambda: red(
            negative(_goods),
            line("-0.01", quantity=None, unit_price=None, original_line_no=2, amount=D(0), tax=D("-0.01")),
        ),
        {},
        "lines[1].total",
        "red_line_not_negative",
    ),
    (
        "blue line with zero amount",  # tax 0.01 on nothing: within the 0.06 tolerance, still no sale
        lambda: order(line("0.01", quantity=None, unit_price=None, amount=D(0), tax=D("0.01")), line("10.00")),
        {},
        "lines[0].total",
        "blue_line_not_positive",
    ),
    (
        "discount with zero amount",
        lambda: order(_goods, discount(_goods, "-0.01").model_copy(update={"amount": D(0), "tax": D("-0.01")})),
        {},
        "lines[1].total",
        "discount_not_negative",
    ),
    (
        "red positive total",
        lambda: red(line("1.00", quantity=None, unit_price=None, original_line_no=1)),
        {},
        "total",
        "red_total_not_negative",
    ),
    ("Σ totals != total", lambda: order(_goods, total=D("100.01")), {}, "total", "total_mismatch"),
    (
        "Σ amounts != total_amount",
        lambda: order(_goods, total_amount=D("94.35")),
        {},
        "total_amount",
        "total_amount_mismatch",
    ),
    ("Σ tax != total_tax", lambda: order(_goods, total_tax=D("5.67")), {}, "total_tax", "total_tax_mismatch"),
    (
        "invoice-level tolerance",
        lambda: order(*[line("100.00", tax=D("5.71"), amount=D("94.29"), unit_price=D("94.29"))] * 30),
        {},
        "total_tax",
        "invoice_tax_tolerance",
    ),
    (
        "above the limit",
        lambda: order(_goods),
        {"single_invoice_limit": D("94.33")},
        "total_amount",
        "single_invoice_limit",
    ),
]


@pytest.mark.parametrize(("factory", "kwargs", "field", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_rule_reports_its_code_on_its_field(
    factory: Callable[[], InvoiceOrder], kwargs: dict[str, Any], field: str, code: str
) -> None:
    assert (field, code) in codes(factory(), **kwargs)


VALIDATION_CODES = {c for c in MESSAGES if not c.startswith(("event_", "refund_"))}
WARNING_CODES = {"red_original_line_missing"}


def test_every_error_code_has_a_case() -> None:
    covered = {c[4] for c in CASES}
    assert VALIDATION_CODES - WARNING_CODES - covered == set()


def test_every_code_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = [code for code in MESSAGES if f"`{code}`" not in text]
    assert missing == []


# --- warnings and policies -----------------------------------------------------------------------------
def test_checksum_failure_is_a_warning_under_the_warn_policy() -> None:
    o = order(buyer=InvoiceBuyer(name="买家公司", tax_id="91350100M000100Y44", type=BuyerType.COMPANY))
    report = check(o, table=TABLE, buyer_checksum_policy=ChecksumPolicy.WARN)
    assert report.ok
    assert [(w.field, w.code) for w in report.warnings] == [("buyer.tax_id", "tax_id_checksum")]
    assert validate(o, table=TABLE, buyer_checksum_policy=ChecksumPolicy.WARN) == []


def test_sandbox_seller_id_passes_with_a_warning_by_default() -> None:
    report = check(order(seller=Party(name="沙箱", tax_id="339902999999789113")), table=TABLE)
    assert report.ok
    assert {w.code for w in report.warnings} == {"tax_id_checksum"}
    strict = check(
        order(seller=Party(name="沙箱", tax_id="339902999999789113")),
        table=TABLE,
        seller_checksum_policy=ChecksumPolicy.REJECT,
    )
    assert {v.code for v in strict.errors} == {"tax_id_checksum"}


def test_short_name_differing_from_the_table_is_an_error() -> None:
    report = check(order(line(short_name="软件")), table=TABLE)
    assert not report.ok
    assert [(e.field, e.code) for e in report.errors] == [("lines[0].short_name", "short_name_mismatch")]


def test_red_line_without_blue_line_number_is_a_warning() -> None:
    report = check(red(negative(_goods, original_line_no=None)), table=TABLE)
    assert report.ok
    assert [w.code for w in report.warnings] == ["red_original_line_missing"]


def test_invoice_tolerance_is_configurable() -> None:
    # each line is 0.0526 off (inside the 0.06 line tolerance): 0.1052 for the invoice
    o = order(*[line("100.00", tax=D("5.71"), amount=D("94.29"), unit_price=D("94.29"))] * 2)
    assert validate(o, table=TABLE) == []
    assert {v.code for v in validate(o, table=TABLE, invoice_level_tolerance=D("0.05"))} == {"invoice_tax_tolerance"}


def test_limit_applies_to_red_invoices_by_absolute_value() -> None:
    reversal = red(negative(_goods))  # amount excl. tax −94.34
    assert codes(reversal, single_invoice_limit=D("94.33")) == {("total_amount", "single_invoice_limit")}
    assert validate(reversal, table=TABLE, single_invoice_limit=D("94.34")) == []
    message = validate(reversal, table=TABLE, single_invoice_limit=D("1.00"))[0].message
    assert "94.34" in message and "-94.34" not in message


def test_every_code_of_the_shipped_table_allows_the_small_scale_exemption() -> None:
    catering = line(tax_code="3070401000000000000", short_name="餐饮服务", tax_rate="0")
    exempt = catering.model_copy(update={"zero_rate_flag": ZeroRateFlag.EXEMPT})
    assert validate(order(exempt), table=TABLE) == []
    for flag in (ZeroRateFlag.NOT_TAXABLE, ZeroRateFlag.ZERO_RATE):
        flagged = catering.model_copy(update={"zero_rate_flag": flag})
        assert codes(order(flagged)) == {("lines[0].zero_rate_flag", "zero_rate_flag_not_allowed")}


def test_company_with_id_and_special_invoice_pass() -> None:
    buyer = InvoiceBuyer(name="北京测试有限公司", tax_id=BUYER_ID, type=BuyerType.COMPANY)
    assert validate(order(buyer=buyer, invoice_type=InvoiceType.SPECIAL), table=TABLE) == []


def test_zero_rate_line_with_an_allowed_flag_passes() -> None:
    rice = line("100.00", tax_code=RICE, short_name="谷物", tax_rate="0", zero_rate_flag=ZeroRateFlag.EXEMPT)
    assert validate(order(rice), table=TABLE) == []


def test_exactly_2000_lines_and_the_length_limits_pass() -> None:
    o = order(
        *([line("10.60")] * 2000),  # 10.00 + 0.60: no rounding, so no invoice-level drift
        seller=Party(name="卖" * 100, tax_id=SELLER_ID, bank="银" * 80, account="6" * 20),
        buyer=InvoiceBuyer(name="个人", address="地" * 89, phone="1" * 11),
        remark="备" * 230,
    )
    assert validate(o, table=TABLE) == []


def test_full_discount_of_a_line_is_allowed() -> None:
    assert validate(order(_goods, discount(_goods, "-100.00"), line("1.00")), table=TABLE) == []


def test_ensure_valid_raises_with_every_error() -> None:
    with pytest.raises(ValidationFailed) as info:
        ensure_valid(order(line(tax_rate="0.13"), remark="备" * 231), table=TABLE)
    assert {v.code for v in info.value.violations} == {"tax_rate_not_allowed", "remark_too_long"}
    assert ensure_valid(order(), table=TABLE).ok
