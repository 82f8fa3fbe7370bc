"""Every invoice rule as a pure check: an ``InvoiceOrder`` in, all broken rules out at once.

:func:`validate` returns the errors (``list[Violation]``, empty when the order can be issued);
:func:`check` returns a :class:`ValidationReport` with the errors *and* the warnings — findings that
do not block issuing, such as a buyer credit code failing the GB 32100 checksum under the ``warn``
policy. Each :class:`~chalicelib.domain.models.Violation` has a field path (``lines[2].tax_rate``,
``buyer.tax_id``), a stable code and a Chinese and an English message; the codes are listed in
:data:`MESSAGES` and documented in ``docs/invoice-rules.md`` (a test keeps the two in step).

The checks never raise on odd input (huge or over-precise numbers, unknown rates, empty strings):
anything the arithmetic cannot safely handle is reported and left out of the sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from typing import Any

from chalicelib.domain.amounts import (
    INVOICE_TAX_TOLERANCE,
    LINE_TAX_TOLERANCE,
    PRICE_QUANTITY_TOLERANCE,
    decimal_places,
)
from chalicelib.domain.errors import ValidationFailed
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
from chalicelib.domain.taxpayer import TaxIdStatus, check_tax_id

MAX_LINES = 2000
NAME_MAX = 100
ADDRESS_PHONE_MAX = 100
BANK_ACCOUNT_MAX = 100
REMARK_MAX = 230
#: Nuonuo caps money fields at 20 characters: sign, 16 integer digits, point, 2 decimals.
MONEY_LIMIT = Decimal(10) ** 16
PRICE_PLACES = 8

#: code → (Chinese template, English template). Templates use ``str.format`` fields.
MESSAGES: dict[str, tuple[str, str]] = {
    # parties
    "seller_tax_id_required": ("销售方纳税人识别号不能为空", "the seller's tax id is required"),
    "tax_id_format": (
        "{party}纳税人识别号格式错误：须为15、17、18或20位数字或大写字母",
        "the {party_en} tax id must be 15, 17, 18 or 20 digits or upper-case letters",
    ),
    "tax_id_checksum": (
        "{party}统一社会信用代码校验位错误（GB 32100-2015）",
        "the {party_en} unified social credit code fails the GB 32100-2015 check character",
    ),
    "buyer_tax_id_required": ("企业购买方须提供纳税人识别号", "a company buyer needs a tax id"),
    "special_invoice_buyer_tax_id": (
        "增值税专用发票须提供购买方纳税人识别号",
        "a special VAT invoice needs the buyer's tax id",
    ),
    "name_required": ("{party}名称不能为空", "the {party_en} name is required"),
    "name_too_long": (
        "{party}名称不能超过100个字符（当前{length}个）",
        "the {party_en} name is longer than 100 characters ({length})",
    ),
    "address_phone_too_long": (
        "{party}地址和电话合计不能超过100个字符（当前{length}个）",
        "the {party_en} address and phone together are longer than 100 characters ({length})",
    ),
    "bank_account_too_long": (
        "{party}开户银行和银行账号合计不能超过100个字符（当前{length}个）",
        "the {party_en} bank and account together are longer than 100 characters ({length})",
    ),
    "remark_too_long": (
        "备注不能超过230个字符（当前{length}个）",
        "the remark is longer than 230 characters ({length})",
    ),
    # lines: identity and rates
    "no_lines": ("发票明细不能为空", "the invoice has no lines"),
    "too_many_lines": (
        "发票明细最多2000行（含折扣行），当前{count}行",
        "at most 2000 lines (discount lines included); this invoice has {count}",
    ),
    "line_name_required": ("商品名称不能为空", "the goods name is required"),
    "tax_code_format": ("税收分类编码须为19位数字", "the tax classification code must be 19 digits"),
    "tax_code_unknown": (
        "税收分类编码{code}不在分类编码表（版本{version}）中",
        "tax classification code {code} is not in the code table (version {version})",
    ),
    "tax_rate_unknown": (
        "税率{rate}不是有效的增值税税率或征收率",
        "{rate} is not a VAT rate (13%, 9%, 6%, 5%, 3%, 1.5%, 1% or 0%)",
    ),
    "tax_rate_not_allowed": (
        "税收分类编码{code}不允许税率{rate}（允许：{allowed}）",
        "tax classification code {code} does not allow rate {rate} (allowed: {allowed})",
    ),
    "zero_rate_flag_required": (
        "0%税率的明细须注明零税率标识（免税、不征税或普通零税率）",
        "a 0% line needs a zero-rate flag (exempt, not taxable or ordinary zero rate)",
    ),
    "zero_rate_flag_unexpected": (
        "非0%税率的明细不能带零税率标识",
        "only 0% lines carry a zero-rate flag",
    ),
    "zero_rate_flag_not_allowed": (
        "税收分类编码{code}不允许零税率标识{flag}",
        "tax classification code {code} does not allow the zero-rate flag {flag}",
    ),
    "short_name_mismatch": (
        "商品简称“{short_name}”与分类编码表中的简称“{expected}”不一致",
        "short name '{short_name}' differs from the code table's '{expected}'",
    ),
    # lines: numbers
    "money_out_of_range": ("数值超出允许范围", "the number is out of range"),
    "money_precision": ("金额须精确到分（最多两位小数）", "money has at most two decimals"),
    "price_precision": ("单价和数量最多8位小数", "unit price and quantity have at most 8 decimals"),
    "price_quantity_pair": (
        "单价和数量须同时填写或同时为空",
        "unit price and quantity are given together or not at all",
    ),
    "unit_price_negative": ("单价不能为负数", "the unit price must not be negative"),
    "quantity_sign": (
        "数量符号错误：蓝字发票商品行数量为正，折扣行和红字发票数量为负",
        "wrong quantity sign: positive on blue lines, negative on discount lines and red invoices",
    ),
    "line_sum_mismatch": (
        "不含税金额{amount}加税额{tax}不等于含税金额{total}",
        "amount {amount} plus tax {tax} is not the total {total}",
    ),
    "line_tax_tolerance": (
        "金额×税率与税额相差{deviation}，超过允许误差0.06",
        "amount × rate differs from the tax by {deviation}, more than 0.06",
    ),
    "price_quantity_mismatch": (
        "单价×数量与金额相差{deviation}，超过允许误差0.01",
        "unit price × quantity differs from the amount by {deviation}, more than 0.01",
    ),
    # discount lines
    "discount_position": ("折扣行必须紧跟在被折扣行之后", "a discount line must directly follow the line it discounts"),
    "discount_multiple": ("每个商品行最多只能有一个折扣行", "a line has at most one discount line"),
    "discount_name_mismatch": (
        "折扣行的商品名称须与被折扣行相同",
        "a discount line has the same goods name as the discounted line",
    ),
    "discount_rate_mismatch": (
        "折扣行的税率须与被折扣行相同",
        "a discount line has the same tax rate as the discounted line",
    ),
    "discount_code_mismatch": (
        "折扣行的税收分类编码和简称须与被折扣行相同",
        "a discount line has the same tax code and short name as the discounted line",
    ),
    "discount_not_negative": ("折扣行金额须为负数", "a discount line's amounts are negative"),
    "discount_exceeds_line": (
        "折扣行金额不能大于被折扣行的金额",
        "a discount is not larger than the line it discounts",
    ),
    "discount_on_red": ("红字发票不能含折扣行，请将折扣并入商品行", "red invoices carry no discount lines: net them"),
    # colour
    "blue_line_not_positive": (
        "蓝字发票的商品行金额须为正数（折扣行除外）",
        "blue invoice lines are positive (discount lines excepted)",
    ),
    "blue_total_not_positive": ("蓝字发票价税合计须大于零", "a blue invoice's total is above zero"),
    "red_line_positive": ("红字发票的明细金额不能为正数", "red invoice lines are not positive"),
    "red_total_not_negative": ("红字发票价税合计须小于零", "a red invoice's total is below zero"),
    "red_original_line_missing": (
        "红字发票明细应注明对应的蓝字发票行号",
        "a red invoice line should name the blue line it reverses",
    ),
    # totals and limits
    "total_mismatch": (
        "明细含税金额合计{sum}不等于价税合计{total}",
        "the line totals add up to {sum}, not the invoice total {total}",
    ),
    "total_amount_mismatch": (
        "明细不含税金额合计{sum}不等于合计金额{total}",
        "the line amounts add up to {sum}, not the total amount {total}",
    ),
    "total_tax_mismatch": (
        "明细税额合计{sum}不等于合计税额{total}",
        "the line taxes add up to {sum}, not the total tax {total}",
    ),
    "invoice_tax_tolerance": (
        "全票金额×税率合计与税额合计相差{deviation}，超过允许误差{tolerance}",
        "Σ amount × rate differs from Σ tax by {deviation}, more than {tolerance}",
    ),
    "single_invoice_limit": (
        "不含税金额{amount}超过单张发票开票限额{limit}",
        "the amount excluding tax {amount} is above the single-invoice limit {limit}",
    ),
    # raised by normalise / normalise_refund (ValidationFailed), listed here to share the catalogue
    "event_not_paid": ("事件不是付款事件，不能开具蓝字发票", "only a paid event yields a blue invoice"),
    "event_not_refund": ("事件不是退款事件，不能开具红字发票", "only a refund event yields a red invoice"),
    "event_currency": ("仅支持人民币（CNY）订单，当前为{currency}", "only CNY orders are invoiced, not {currency}"),
    "event_amount_not_positive": ("订单金额须大于零", "the order amount must be above zero"),
    "event_line_negative": ("订单明细金额或优惠不能为负数", "an order line's total or discount is negative"),
    "refund_amount_not_positive": ("退款金额须大于零", "the refund amount must be above zero"),
    "refund_amount_missing": ("退款事件缺少退款金额", "the refund event carries no refund amount"),
    "refund_exceeds_payment": ("退款金额超过订单支付金额", "the refund is larger than the payment"),
    "refund_exceeds_invoice": (
        "累计红冲金额{reversed}加本次退款{refund}超过蓝字发票价税合计{total}",
        "already reversed {reversed} plus this refund {refund} is more than the blue invoice total {total}",
    ),
    "refund_source_not_blue": ("只能对蓝字发票开具红字发票", "only a blue invoice can be reversed"),
    "refund_ledger_mismatch": (
        "已开红字发票合计{sum}与已红冲金额{reversed}不一致",
        "the previous red invoices add up to {sum}, not the already reversed {reversed}",
    ),
}

_PARTY_NAMES = {"buyer": ("购买方", "buyer's"), "seller": ("销售方", "seller's")}


def violation(field: str, code: str, /, **params: Any) -> Violation:
    """Build a :class:`Violation` from the catalogue (unknown template fields stay literal)."""
    zh, en = MESSAGES[code]
    safe = _SafeDict({k: str(v) for k, v in params.items()})
    return Violation(field=field, code=code, message=zh.format_map(safe), message_en=en.format_map(safe))


class _SafeDict(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@dataclass(frozen=True)
class ValidationReport:
    """Errors block issuing; warnings are recorded and shown, never blocking."""

    errors: tuple[Violation, ...]
    warnings: tuple[Violation, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


class _Findings:
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


def validate(
    order: InvoiceOrder,
    *,
    table: TaxCodeTable,
    buyer_checksum_policy: ChecksumPolicy = ChecksumPolicy.WARN,
    invoice_level_tolerance: Decimal = INVOICE_TAX_TOLERANCE,
    single_invoice_limit: Decimal | None = None,
    seller_checksum_policy: ChecksumPolicy = ChecksumPolicy.WARN,
) -> list[Violation]:
    """All errors of ``order`` (empty list: it may be issued). Warnings: see :func:`check`."""
    return list(
        check(
            order,
            table=table,
            buyer_checksum_policy=buyer_checksum_policy,
            invoice_level_tolerance=invoice_level_tolerance,
            single_invoice_limit=single_invoice_limit,
            seller_checksum_policy=seller_checksum_policy,
        ).errors
    )


def ensure_valid(
    order: InvoiceOrder,
    *,
    table: TaxCodeTable,
    buyer_checksum_policy: ChecksumPolicy = ChecksumPolicy.WARN,
    invoice_level_tolerance: Decimal = INVOICE_TAX_TOLERANCE,
    single_invoice_limit: Decimal | None = None,
    seller_checksum_policy: ChecksumPolicy = ChecksumPolicy.WARN,
) -> ValidationReport:
    """:func:`check`, raising :class:`ValidationFailed` with every error when there is any."""
    report = check(
        order,
        table=table,
        buyer_checksum_policy=buyer_checksum_policy,
        invoice_level_tolerance=invoice_level_tolerance,
        single_invoice_limit=single_invoice_limit,
        seller_checksum_policy=seller_checksum_policy,
    )
    if report.errors:
        raise ValidationFailed(report.errors)
    return report


def check(
    order: InvoiceOrder,
    *,
    table: TaxCodeTable,
    buyer_checksum_policy: ChecksumPolicy = ChecksumPolicy.WARN,
    invoice_level_tolerance: Decimal = INVOICE_TAX_TOLERANCE,
    single_invoice_limit: Decimal | None = None,
    seller_checksum_policy: ChecksumPolicy = ChecksumPolicy.WARN,
) -> ValidationReport:
    """Run every rule; see ``docs/invoice-rules.md`` for the list.

    ``single_invoice_limit`` is the store's 开票限额 (excluding tax), checked on blue invoices.
    The seller's checksum defaults to ``warn`` because sandboxes use ids that fail it.
    """
    found = _Findings()
    # A private context: the caller's (or another thread's) decimal settings never change a verdict.
    with localcontext(Context(prec=60, rounding=ROUND_HALF_UP)):
        _check_parties(order, found, buyer_checksum_policy, seller_checksum_policy)
        _check_remark(order, found)
        sums_ok = _check_lines(order, table, found)
        _check_totals(order, found, sums_ok, invoice_level_tolerance, single_invoice_limit)
    return ValidationReport(errors=tuple(found.errors), warnings=tuple(found.warnings))


# --- parties -----------------------------------------------------------------------------------
def _check_parties(
    order: InvoiceOrder,
    found: _Findings,
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


def _check_party(role: str, party: Party, found: _Findings, policy: ChecksumPolicy) -> None:
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
        status = check_tax_id(party.tax_id)
        if status is TaxIdStatus.BAD_FORMAT:
            found.error(f"{role}.tax_id", "tax_id_format", **names)
        elif status is TaxIdStatus.BAD_CHECKSUM:
            found.report(f"{role}.tax_id", "tax_id_checksum", policy, **names)


def _check_remark(order: InvoiceOrder, found: _Findings) -> None:
    if order.remark and len(order.remark) > REMARK_MAX:
        found.error("remark", "remark_too_long", length=len(order.remark))


# --- lines -------------------------------------------------------------------------------------
def _check_lines(order: InvoiceOrder, table: TaxCodeTable, found: _Findings) -> bool:
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


def _check_code_and_rate(where: str, line: InvoiceLine, table: TaxCodeTable, found: _Findings) -> None:
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


def _check_numbers(where: str, line: InvoiceLine, red: bool, found: _Findings) -> bool:
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


def _check_price_quantity(where: str, line: InvoiceLine, red: bool, usable: bool, found: _Findings) -> None:
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
    if price is not None and numbers_ok and price < 0:
        found.error(f"{where}.unit_price", "unit_price_negative")
    if quantity is not None and numbers_ok:
        negative_expected = red or line.is_discount
        if (negative_expected and quantity >= 0) or (not negative_expected and quantity <= 0):
            found.error(f"{where}.quantity", "quantity_sign")
    if price is not None and quantity is not None and numbers_ok and usable:
        deviation = abs(price * quantity - line.amount)
        if deviation > PRICE_QUANTITY_TOLERANCE:
            found.error(f"{where}.unit_price", "price_quantity_mismatch", deviation=_short(deviation))


def _check_sign(where: str, line: InvoiceLine, red: bool, found: _Findings) -> None:
    values = (line.amount, line.tax, line.total)
    if red:
        if any(v > 0 for v in values):
            found.error(f"{where}.total", "red_line_positive")
    elif not line.is_discount and (line.total <= 0 or line.amount < 0 or line.tax < 0):
        found.error(f"{where}.total", "blue_line_not_positive")


def _check_discount(index: int, order: InvoiceOrder, found: _Findings) -> None:
    where = f"lines[{index}]"
    line = order.lines[index]
    if order.colour is InvoiceColour.RED:
        found.error(f"{where}.is_discount", "discount_on_red")
    if line.total >= 0 or line.amount > 0 or line.tax > 0:
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
def _check_totals(
    order: InvoiceOrder,
    found: _Findings,
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


def _check_total_sign_and_limit(order: InvoiceOrder, found: _Findings, limit: Decimal | None) -> None:
    red = order.colour is InvoiceColour.RED
    if red and order.total >= 0:
        found.error("total", "red_total_not_negative")
    if not red and order.total <= 0:
        found.error("total", "blue_total_not_positive")
    if limit is not None and not red and order.total_amount > limit:
        found.error("total_amount", "single_invoice_limit", amount=order.total_amount, limit=limit)


def _check_sums(order: InvoiceOrder, found: _Findings, totals_ok: bool, tolerance: Decimal) -> None:
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
