"""The invoice rules as pure checks: each one reads an ``InvoiceOrder`` and records what it breaks.

Parties (names, tax ids and their GB 32100 checksum, address/bank lengths), the remark, every line
(tax code and rate against the code table, zero-rate flags, ranges and precision, line sums and
tolerances, price × quantity, signs, discount lines) and the invoice totals (sums, the invoice-level
tax tolerance, the single-invoice limit). Findings are catalogue codes
(:mod:`chalicelib.domain.validation_catalogue`) collected in :class:`Findings`, errors apart from
warnings; :func:`chalicelib.domain.validation.check` runs the rules in order and reports.

The checks never raise on odd input (huge or over-precise numbers, unknown rates, empty strings):
anything the arithmetic cannot safely handle is reported and left out of the sums.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from chalicelib.domain.amounts import LINE_TAX_TOLERANCE, PRICE_QUANTITY_TOLERANCE, decimal_places
from chalicelib.domain.models import (
    BuyerType,
    ChecksumPolicy,
    InvoiceColour,
    InvoiceLine,
    InvoiceOrder,
    InvoiceType,
    Party,
    Violation,
)
from chalicelib.domain.taxcodes import TAX_CODE_RE, VAT_RATES, TaxCodeTable
from chalicelib.domain.taxpayer import TaxIdProblem, TaxIdStatus, check_tax_id, tax_id_problem
from chalicelib.domain.validation_catalogue import violation

MAX_LINES = 2000
NAME_MAX = 100
ADDRESS_PHONE_MAX = 100
BANK_ACCOUNT_MAX = 100
REMARK_MAX = 230
#: Nuonuo caps money fields at 20 characters: sign, 16 integer digits, point, 2 decimals.
MONEY_LIMIT = Decimal(10) ** 16
PRICE_PLACES = 8

_PARTY_NAMES = {"buyer": ("购买方", "buyer's"), "seller": ("销售方", "seller's")}
#: Malformed tax ids with a message of their own; wrong length or characters are ``tax_id_format``.
_TAX_ID_PROBLEM_CODES = {
    TaxIdProblem.WHITESPACE: "tax_id_whitespace",
    TaxIdProblem.ALPHABET: "tax_id_alphabet",
    TaxIdProblem.REGION: "tax_id_region",
}


class Findings:
    """What the rules found so far: errors (blocking) apart from warnings (recorded, never blocking)."""

    def __init__(self) -> None:
        self.errors: list[Violation] = []
        self.warnings: list[Violation] = []

    def error(self, field: str, code: str, /, **params: Any) -> None:
        self.errors.append(violation(field, code, **params))

    def warn(self, field: str, code: str, /, **params: Any) -> None:
        self.warnings.append(violation(field, code, **params))

    def report(self, field: str, code: str, policy: ChecksumPolicy, /, **params: Any) -> None:
        if policy is ChecksumPolicy.REJECT:
            self.error(field, code, **params)
        else:
            self.warn(field, code, **params)


# --- parties -----------------------------------------------------------------------------------
def check_parties(
    order: InvoiceOrder,
    found: Findings,
    buyer_policy: ChecksumPolicy,
    seller_policy: ChecksumPolicy,
) -> None:
    _check_party("seller", order.seller, found, seller_policy)
    _check_party("buyer", order.buyer, found, buyer_policy)
    if not order.seller.tax_id:
        found.error("seller.tax_id", "seller_tax_id_required")
    if not order.buyer.tax_id:
        if order.invoice_type is InvoiceType.SPECIAL:
            found.error("buyer.tax_id", "special_invoice_buyer_tax_id")
        if order.buyer.type is BuyerType.COMPANY:
            found.error("buyer.tax_id", "buyer_tax_id_required")


def _check_party(role: str, party: Party, found: Findings, policy: ChecksumPolicy) -> None:
    zh, en = _PARTY_NAMES[role]
    names = {"party": zh, "party_en": en}
    if not party.name:
        found.error(f"{role}.name", "name_required", **names)
    elif len(party.name) > NAME_MAX:
        found.error(f"{role}.name", "name_too_long", length=len(party.name), **names)
    address_phone = len(party.address or "") + len(party.phone or "")
    if address_phone > ADDRESS_PHONE_MAX:
        found.error(f"{role}.address", "address_phone_too_long", length=address_phone, **names)
    bank_account = len(party.bank or "") + len(party.account or "")
    if bank_account > BANK_ACCOUNT_MAX:
        found.error(f"{role}.bank", "bank_account_too_long", length=bank_account, **names)
    if party.tax_id:
        problem = tax_id_problem(party.tax_id)
        if problem is not None:
            found.error(f"{role}.tax_id", _TAX_ID_PROBLEM_CODES.get(problem, "tax_id_format"), **names)
        elif check_tax_id(party.tax_id) is TaxIdStatus.BAD_CHECKSUM:
            found.report(f"{role}.tax_id", "tax_id_checksum", policy, **names)


def check_remark(order: InvoiceOrder, found: Findings) -> None:
    if order.remark and len(order.remark) > REMARK_MAX:
        found.error("remark", "remark_too_long", length=len(order.remark))


# --- lines -------------------------------------------------------------------------------------
def check_lines(order: InvoiceOrder, table: TaxCodeTable, found: Findings) -> bool:
    """Per-line rules; returns False when some line's numbers cannot enter the invoice sums."""
    lines = order.lines
    if not lines:
        found.error("lines", "no_lines")
    elif len(lines) > MAX_LINES:
        found.error("lines", "too_many_lines", count=len(lines))
    red = order.colour is InvoiceColour.RED
    sums_ok = True
    for index, line in enumerate(lines):
        where = f"lines[{index}]"
        if not line.name:
            found.error(f"{where}.name", "line_name_required")
        _check_code_and_rate(where, line, table, found)
        numbers_ok = _check_numbers(where, line, red, found)
        sums_ok = sums_ok and numbers_ok
        if line.is_discount:
            _check_discount(index, order, found)
        elif red and line.original_line_no is None:
            found.warn(f"{where}.original_line_no", "red_original_line_missing")
        if numbers_ok:
            _check_sign(where, line, red, found)
    return sums_ok


def _check_code_and_rate(where: str, line: InvoiceLine, table: TaxCodeTable, found: Findings) -> None:
    rate_known = line.tax_rate in VAT_RATES
    if not rate_known:
        found.error(f"{where}.tax_rate", "tax_rate_unknown", rate=_pct(line.tax_rate))
    is_zero = rate_known and line.tax_rate == 0
    if is_zero and line.zero_rate_flag is None:
        found.error(f"{where}.zero_rate_flag", "zero_rate_flag_required")
    if rate_known and not is_zero and line.zero_rate_flag is not None:
        found.error(f"{where}.zero_rate_flag", "zero_rate_flag_unexpected")
    if not TAX_CODE_RE.match(line.tax_code):
        found.error(f"{where}.tax_code", "tax_code_format")
        return
    entry = table.lookup(line.tax_code)
    if entry is None:
        found.error(f"{where}.tax_code", "tax_code_unknown", code=line.tax_code, version=table.version)
        return
    if rate_known and not entry.allows(line.tax_rate):
        allowed = "、".join(_pct(r) for r in sorted(entry.rates, reverse=True))
        rate = _pct(line.tax_rate)
        found.error(f"{where}.tax_rate", "tax_rate_not_allowed", code=line.tax_code, rate=rate, allowed=allowed)
    if is_zero and line.zero_rate_flag is not None and not entry.allows_flag(line.zero_rate_flag):
        flag = line.zero_rate_flag.value
        found.error(f"{where}.zero_rate_flag", "zero_rate_flag_not_allowed", code=line.tax_code, flag=flag)
    if line.short_name != entry.short_name:
        # The platform prints *简称* from its own table and refuses a line that says otherwise.
        found.error(f"{where}.short_name", "short_name_mismatch", short_name=line.short_name, expected=entry.short_name)


def _in_range(value: Decimal) -> bool:
    return value.is_finite() and abs(value) < MONEY_LIMIT


def _check_numbers(where: str, line: InvoiceLine, red: bool, found: Findings) -> bool:
    """Ranges, precision, line sum and tolerances; False when the money is unusable."""
    money = {"amount": line.amount, "tax": line.tax, "total": line.total}
    usable = True
    for name, value in money.items():
        if not _in_range(value):
            found.error(f"{where}.{name}", "money_out_of_range")
            usable = False
        elif decimal_places(value) > 2:
            found.error(f"{where}.{name}", "money_precision")
    rate_ok = line.tax_rate in VAT_RATES
    if usable:
        if line.amount + line.tax != line.total:
            found.error(f"{where}.total", "line_sum_mismatch", amount=line.amount, tax=line.tax, total=line.total)
        if rate_ok:
            deviation = abs(line.amount * line.tax_rate - line.tax)
            if deviation > LINE_TAX_TOLERANCE:
                found.error(f"{where}.tax", "line_tax_tolerance", deviation=_short(deviation))
    _check_price_quantity(where, line, red, usable, found)
    return usable


def _check_price_quantity(where: str, line: InvoiceLine, red: bool, usable: bool, found: Findings) -> None:
    price, quantity = line.unit_price, line.quantity
    if (price is None) != (quantity is None):
        found.error(f"{where}.quantity", "price_quantity_pair")
    numbers_ok = True
    for name, value in (("unit_price", price), ("quantity", quantity)):
        if value is None:
            continue
        if not _in_range(value):
            found.error(f"{where}.{name}", "money_out_of_range")
            numbers_ok = False
        elif decimal_places(value) > PRICE_PLACES:
            found.error(f"{where}.{name}", "price_precision")
    if price is not None and numbers_ok and price <= 0:
        # A free item is no invoice line; the sign of a discount or a reversal is on the quantity.
        found.error(f"{where}.unit_price", "unit_price_not_positive")
    if quantity is not None and numbers_ok:
        negative_expected = red or line.is_discount
        if (negative_expected and quantity >= 0) or (not negative_expected and quantity <= 0):
            found.error(f"{where}.quantity", "quantity_sign")
    if price is not None and quantity is not None and numbers_ok and usable:
        deviation = abs(price * quantity - line.amount)
        if deviation > PRICE_QUANTITY_TOLERANCE:
            found.error(f"{where}.unit_price", "price_quantity_mismatch", deviation=_short(deviation))


def _check_sign(where: str, line: InvoiceLine, red: bool, found: Findings) -> None:
    """Blue goods lines are positive (amount and total above zero, tax not negative); red lines are
    their negative mirror (amount and total below zero, tax not positive). A zero-amount line is
    neither: it invoices nothing (nor does a zero-amount discount discount anything)."""
    if red:
        if line.amount >= 0 or line.total >= 0 or line.tax > 0:
            found.error(f"{where}.total", "red_line_not_negative")
    elif not line.is_discount and (line.total <= 0 or line.amount <= 0 or line.tax < 0):
        found.error(f"{where}.total", "blue_line_not_positive")


def _check_discount(index: int, order: InvoiceOrder, found: Findings) -> None:
    where = f"lines[{index}]"
    line = order.lines[index]
    if order.colour is InvoiceColour.RED:
        found.error(f"{where}.is_discount", "discount_on_red")
    if line.total >= 0 or line.amount >= 0 or line.tax > 0:
        found.error(f"{where}.total", "discount_not_negative")
    if index == 0:
        found.error(f"{where}.is_discount", "discount_position")
        return
    target = order.lines[index - 1]
    if target.is_discount:
        found.error(f"{where}.is_discount", "discount_multiple")
        return
    if line.name != target.name:
        found.error(f"{where}.name", "discount_name_mismatch")
    if line.tax_rate != target.tax_rate:
        found.error(f"{where}.tax_rate", "discount_rate_mismatch")
    if line.tax_code != target.tax_code or line.short_name != target.short_name:
        found.error(f"{where}.tax_code", "discount_code_mismatch")
    if all(_in_range(v) for v in (line.amount, line.total, target.amount, target.total)) and (
        abs(line.amount) > abs(target.amount) or abs(line.total) > abs(target.total)
    ):
        found.error(f"{where}.amount", "discount_exceeds_line")


# --- totals ------------------------------------------------------------------------------------
def check_totals(
    order: InvoiceOrder,
    found: Findings,
    sums_ok: bool,
    tolerance: Decimal,
    limit: Decimal | None,
) -> None:
    totals_ok = True
    for name in ("total_amount", "total_tax", "total"):
        value: Decimal = getattr(order, name)
        if not _in_range(value):
            found.error(name, "money_out_of_range")
            totals_ok = False
        elif decimal_places(value) > 2:
            found.error(name, "money_precision")
    if totals_ok:
        _check_total_sign_and_limit(order, found, limit)
    if sums_ok and order.lines:
        _check_sums(order, found, totals_ok, tolerance)


def _check_total_sign_and_limit(order: InvoiceOrder, found: Findings, limit: Decimal | None) -> None:
    red = order.colour is InvoiceColour.RED
    if red and order.total >= 0:
        found.error("total", "red_total_not_negative")
    if not red and order.total <= 0:
        found.error("total", "blue_total_not_positive")
    # The limit (开票限额) applies to red invoices too, by absolute value, as the platform (and the
    # sandbox) apply it: a red reversal of a blue issued under a since-lowered limit is refused.
    if limit is not None and abs(order.total_amount) > limit:
        found.error("total_amount", "single_invoice_limit", amount=abs(order.total_amount), limit=limit)


def _check_sums(order: InvoiceOrder, found: Findings, totals_ok: bool, tolerance: Decimal) -> None:
    zero = Decimal(0)
    sum_total = sum((ln.total for ln in order.lines), zero)
    sum_amount = sum((ln.amount for ln in order.lines), zero)
    sum_tax = sum((ln.tax for ln in order.lines), zero)
    if totals_ok:
        if sum_total != order.total:
            found.error("total", "total_mismatch", sum=sum_total, total=order.total)
        if sum_amount != order.total_amount:
            found.error("total_amount", "total_amount_mismatch", sum=sum_amount, total=order.total_amount)
        if sum_tax != order.total_tax:
            found.error("total_tax", "total_tax_mismatch", sum=sum_tax, total=order.total_tax)
    if all(ln.tax_rate in VAT_RATES for ln in order.lines):
        deviation = abs(sum((ln.amount * ln.tax_rate for ln in order.lines), zero) - sum_tax)
        if deviation > tolerance:
            found.error("total_tax", "invoice_tax_tolerance", deviation=_short(deviation), tolerance=tolerance)


def _pct(rate: Decimal) -> str:
    if not rate.is_finite() or abs(rate) > 100:
        return str(rate)
    return f"{(rate * 100).normalize():f}%"


def _short(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.0001'), rounding=ROUND_HALF_UP):f}"
