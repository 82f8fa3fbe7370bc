"""Independent invoice rules of the sandbox (``shared/reference/tax-rules.md``), stdlib + decimal only.

Both protocol front ends parse their wire payload into one neutral ``Draft`` (recording any malformed
value as a ``Violation`` on the way; both live in :mod:`chalicelib.sandbox.draft`, re-exported here)
and call ``validate``. A violation names the wire field, a *category* the STA front end maps to its
error code (FIELD → E1001, AMOUNT → E1002, TAXCODE → E1003, LIMIT → E1004, RED → E1005) and the Nuonuo
code to use on that front end. This module owns the stateless rules and the tax code table (the tax id checks are in
``tax_ids``); ledger-dependent rules (credit line, red forms, Σ red ≤ blue) live in ``state`` and
``red_forms``. It deliberately shares no code with ``chalicelib.domain``: the sandbox is a second,
independent reading of the same rules.
"""

# ruff: noqa: PLR0912, PLR0915 - rule checks are long flat lists of independent conditions

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from chalicelib.sandbox.draft import (
    AMOUNT,
    FIELD,
    LIMIT,
    RED,
    TAXCODE,
    Draft,
    Line,
    Names,
    Outcome,
    Violation,
    decimals_of,
    parse_decimal,
    text,
)
from chalicelib.sandbox.tax_ids import (  # re-exported: importers use chalicelib.sandbox.rules
    TAX_ID_LENGTHS,
    USCC_ALPHABET,
    USCC_WEIGHTS,
    ChecksumPolicy,
    check_tax_id,
    uscc_valid,
)

__all__ = [
    "AMOUNT",
    "CENT",
    "FIELD",
    "INVOICE_TAX_TOLERANCE",
    "LIMIT",
    "LINE_TAX_TOLERANCE",
    "MAX_LINES",
    "MONEY_LIMIT",
    "PRICE_TOLERANCE",
    "RATES",
    "RED",
    "TAXCODE",
    "TAX_ID_LENGTHS",
    "USCC_ALPHABET",
    "USCC_WEIGHTS",
    "ChecksumPolicy",
    "Draft",
    "Line",
    "Names",
    "Outcome",
    "TaxCode",
    "TaxCodeTable",
    "Violation",
    "check_tax_id",
    "decimals_of",
    "parse_decimal",
    "text",
    "uscc_valid",
    "validate",
]

RATES = frozenset(Decimal(r) for r in ("0.13", "0.09", "0.06", "0.05", "0.03", "0.015", "0.01", "0"))
MAX_LINES = 2000
LINE_TAX_TOLERANCE = Decimal("0.06")
PRICE_TOLERANCE = Decimal("0.01")
INVOICE_TAX_TOLERANCE = Decimal("1.27")
CENT = Decimal("0.01")
#: Money, quantities and unit prices stay below 10^16 in absolute value: Nuonuo caps amounts at 20
#: characters (E9124/E9126 — sign, 16 integer digits, point, 2 decimals).
MONEY_LIMIT = Decimal(10) ** 16
#: Zero-rate flag codes (STA ``lslbs``, Nuonuo ``zeroRateFlag``): 1 免税, 2 不征税, 3 普通零税率.
ZERO_RATE_FLAGS = ("1", "2", "3")
_CODE_RE = re.compile(r"^\d{19}$")
_SHORT_NAME_RE = re.compile(r"^\*([^*]+)\*(.*)$")


@dataclass(frozen=True)
class TaxCode:
    code: str
    name: str
    short_name: str
    rates: frozenset[Decimal]
    rate_texts: tuple[str, ...]
    zero_rate_flags: frozenset[str] = frozenset()  # wire codes ("1" exempt, "2" not taxable, "3" zero rate)


class TaxCodeTable:
    """The curated classification table (data file ``taxcodes.json``).

    The file holds the validator's table (``chalicelib/domain/data/taxcodes.json``) entry for entry under
    the platform's field names — one table as data, read here by the sandbox's own loader (no shared
    code); ``tests/unit/test_taxcodes.py`` proves the two equal::

        {"version": ..., "codes": [{"ssflbm": code, "spmc": name, "sphfwjc": short name,
                                    "sl": ["0.06", ...], "lslbs": ["1", ...], "note"?}]}

    ``lslbs`` lists the zero-rate flags a 0 % line of the code may carry.
    """

    def __init__(self, codes: list[TaxCode]) -> None:
        self._codes = {c.code: c for c in codes}

    @classmethod
    def load(cls, path: Path | None = None) -> TaxCodeTable:
        path = path or Path(__file__).with_name("taxcodes.json")
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            [
                TaxCode(
                    code=c["ssflbm"],
                    name=c["spmc"],
                    short_name=c["sphfwjc"],
                    rates=frozenset(Decimal(r) for r in c["sl"]),
                    rate_texts=tuple(c["sl"]),
                    zero_rate_flags=frozenset(c.get("lslbs", ())),
                )
                for c in raw["codes"]
            ]
        )

    def get(self, code: str) -> TaxCode | None:
        return self._codes.get(code)

    def all(self) -> list[TaxCode]:
        return sorted(self._codes.values(), key=lambda c: c.code)


# --- the rules ---------------------------------------------------------------------------------------


def _len(s: str) -> int:
    return len(s)


def validate(
    draft: Draft,
    names: Names,
    table: TaxCodeTable,
    *,
    checksum: ChecksumPolicy = ChecksumPolicy.WARN,
    single_invoice_limit: Decimal | None = None,
    out: Outcome | None = None,
) -> Outcome:
    """Every stateless rule of tax-rules.md over one draft; appends to ``out`` (parse violations)."""
    out = out or Outcome()
    _check_parties(draft, names, out, checksum)
    _check_lines(draft, names, table, out)
    if not draft.lines:
        return out
    header = _out_of_range((("amount", draft.amount), ("tax", draft.tax), ("total", draft.total)))
    if not _refuse_out_of_range(out, header, names.h) or any(_out_of_range(_line_numbers(ln)) for ln in draft.lines):
        return out  # out-of-range numbers are refused on their own and kept out of every sum
    _check_totals(draft, names, out)
    if single_invoice_limit is not None:
        amount = draft.amount if draft.amount is not None else draft.sums()[0]
        if abs(amount) > single_invoice_limit:
            out.add(LIMIT, names.h("amount"), f"超过单张开票限额 {single_invoice_limit}", "E9154")
    return out


def _check_parties(draft: Draft, names: Names, out: Outcome, checksum: ChecksumPolicy) -> None:
    if not draft.seller_tax_id:
        out.add(FIELD, names.h("seller_tax_id"), f"{names.h('seller_tax_id')} 不能为空")
    else:
        check_tax_id(out, draft.seller_tax_id, names.h("seller_tax_id"), checksum=None, what="销方税号")
    if draft.seller_name is not None:
        if not draft.seller_name:
            out.add(FIELD, names.h("seller_name"), f"{names.h('seller_name')} 不能为空")
        elif _len(draft.seller_name) > 100:
            out.add(FIELD, names.h("seller_name"), f"{names.h('seller_name')} 超过100个字符")
    if not draft.buyer_name:
        out.add(FIELD, names.h("buyer_name"), f"{names.h('buyer_name')} 不能为空")
    elif _len(draft.buyer_name) > 100:
        out.add(FIELD, names.h("buyer_name"), f"{names.h('buyer_name')} 超过100个字符")
    if draft.buyer_tax_id:
        check_tax_id(out, draft.buyer_tax_id, names.h("buyer_tax_id"), checksum=checksum, what="购方税号")
    elif draft.special:
        out.add(FIELD, names.h("buyer_tax_id"), f"{names.h('buyer_tax_id')} 专用发票必须填写购方税号", "E4000")
    elif draft.buyer_individual is False:
        out.add(FIELD, names.h("buyer_tax_id"), f"{names.h('buyer_tax_id')} 企业购方必须填写税号", "E4000")
    if _len(draft.buyer_address) + _len(draft.buyer_phone) > 100:
        out.add(FIELD, names.h("buyer_address"), f"{names.h('buyer_address')} 地址和电话合计超过100个字符")
    if _len(draft.buyer_bank) + _len(draft.buyer_account) > 100:
        out.add(FIELD, names.h("buyer_bank"), f"{names.h('buyer_bank')} 开户行和账号合计超过100个字符")
    if _len(draft.remark) > 230:
        out.add(FIELD, names.h("remark"), f"{names.h('remark')} 超过230个字符")


def _check_lines(draft: Draft, names: Names, table: TaxCodeTable, out: Outcome) -> None:
    lines = draft.lines
    if not lines:
        out.add(FIELD, names.lines, f"{names.lines} 商品明细不能为空", "E9122")
        return
    if len(lines) > MAX_LINES:
        out.add(FIELD, names.lines, f"{names.lines} 明细行数超过{MAX_LINES}行")
        return
    for ln in lines:
        _check_line(draft, ln, names, table, out)
    if draft.red:
        for ln in lines:
            if ln.kind != "0":
                out.add(FIELD, names.ln(ln.index, "kind"), f"{names.ln(ln.index, 'kind')} 红字发票不能有折扣行")
        return
    _check_discounts(lines, names, out)


def _check_line(draft: Draft, ln: Line, names: Names, table: TaxCodeTable, out: Outcome) -> None:
    def f(key: str) -> str:
        return names.ln(ln.index, key)

    row = ln.index + 1
    if ln.kind not in ("0", "1", "2"):
        out.add(FIELD, f("kind"), f"{f('kind')} 发票行性质只能为0、1、2")
    if not _goods_name(ln.name):
        out.add(FIELD, f("name"), f"{f('name')} 商品名称不能为空（*简称*之后须有商品名称）")
    elif names.line_name_max and len(ln.name) > names.line_name_max:
        out.add(FIELD, f("name"), f"{f('name')} 商品名称超过{names.line_name_max}个字符")
    code = table.get(ln.code) if ln.code else None
    if not ln.code or not _CODE_RE.match(ln.code):
        out.add(TAXCODE, f("code"), f"{f('code')} 税收分类编码必须为19位数字", "E9121")
    elif code is None:
        out.add(TAXCODE, f("code"), f"{f('code')} 税收分类编码 {ln.code} 不存在", "E9121")
    if ln.rate is None:
        out.add(FIELD, f("rate"), f"{f('rate')} 税率不能为空")
    elif ln.rate not in RATES:
        out.add(TAXCODE, f("rate"), f"{f('rate')} 税率 {ln.rate} 不在允许的税率中", "E4000")
    elif code is not None and ln.rate not in code.rates:
        out.add(TAXCODE, f("rate"), f"{f('rate')} 税收分类编码 {ln.code} 不允许税率 {ln.rate}", "E4000")
    if ln.rate is not None and ln.rate == 0 and ln.zero_rate_flag not in ZERO_RATE_FLAGS:
        out.add(FIELD, f("zero_rate_flag"), f"{f('zero_rate_flag')} 零税率行必须标明免税、不征税或普通零税率")
    if ln.rate is not None and ln.rate != 0 and ln.zero_rate_flag in ZERO_RATE_FLAGS:
        out.add(FIELD, f("zero_rate_flag"), f"{f('zero_rate_flag')} 非零税率行不能标零税率标识")
    if (
        code is not None
        and ln.rate == 0
        and ln.rate in code.rates
        and ln.zero_rate_flag in ZERO_RATE_FLAGS
        and ln.zero_rate_flag not in code.zero_rate_flags
    ):
        msg = f"{f('zero_rate_flag')} 税收分类编码 {ln.code} 不允许零税率标识 {ln.zero_rate_flag}"
        out.add(TAXCODE, f("zero_rate_flag"), msg, "E4000")
    if code is not None and ln.name.startswith("*"):
        m = _SHORT_NAME_RE.match(ln.name)
        if m is None or m.group(1) != code.short_name:
            out.add(TAXCODE, f("name"), f"{f('name')} 商品简称应为 *{code.short_name}*", "E4000")
    if ln.amount is None or ln.tax is None or ln.total is None:
        for key, val in (("amount", ln.amount), ("tax", ln.tax), ("total", ln.total)):
            if val is None:
                out.add(FIELD, f(key), f"{f(key)} 不能为空", "E9123")
        return
    if not _refuse_out_of_range(out, _out_of_range(_line_numbers(ln)), f):
        return  # kept out of every sum (the arithmetic would be meaningless, or overflow)
    if ln.amount + ln.tax != ln.total:
        out.add(AMOUNT, f("total"), f"{f('total')} 金额+税额不等于含税金额,第{row}行", "E9130")
    if ln.rate in RATES and abs(ln.amount * ln.rate - ln.tax) > LINE_TAX_TOLERANCE:
        out.add(AMOUNT, f("tax"), f"{f('tax')} 金额*税率-税额大于0.06,明细行名称:{ln.name},第{row}行", "E9131")
    if (ln.qty is None) != (ln.price is None):
        missing = "price" if ln.price is None else "qty"
        out.add(FIELD, f(missing), f"{f(missing)} 单价和数量必须同时填写或同时为空")
    if ln.price is not None and ln.price <= 0:
        out.add(FIELD, f("price"), f"{f('price')} 单价必须为正数")
    if ln.qty is not None and ln.price is not None:
        base = ln.total if ln.price_includes_tax else ln.amount
        if abs(ln.qty * ln.price - base) > PRICE_TOLERANCE:
            out.add(AMOUNT, f("amount"), f"{f('amount')} 单价*数量与金额相差超过0.01,第{row}行", "E4000")
    if draft.red:
        if ln.amount >= 0 or ln.total >= 0 or ln.tax > 0:
            out.add(AMOUNT, f("amount"), f"{f('amount')} 红字发票金额必须为负数,第{row}行", "E4000")
        if ln.qty is not None and ln.qty >= 0:
            out.add(FIELD, f("qty"), f"{f('qty')} 红字发票数量必须为负数", "E9119")
    elif ln.kind in ("0", "2"):
        if ln.amount <= 0 or ln.total <= 0 or ln.tax < 0:
            out.add(AMOUNT, f("amount"), f"{f('amount')} 蓝字发票金额必须为正数,第{row}行", "E4000")
        if ln.qty is not None and ln.qty <= 0:
            out.add(FIELD, f("qty"), f"{f('qty')} 蓝字发票数量必须为正数", "E9114")


def _goods_name(name: str) -> str:
    """The goods name without its ``*简称*`` prefix (``*餐饮服务*`` alone names no goods)."""
    m = _SHORT_NAME_RE.match(name)
    return (m.group(2) if m else name).strip()


_RANGE_CODES = {"amount": "E9126", "total": "E9124"}


def _line_numbers(ln: Line) -> tuple[tuple[str, Decimal | None], ...]:
    return (("amount", ln.amount), ("tax", ln.tax), ("total", ln.total), ("qty", ln.qty), ("price", ln.price))


def _out_of_range(numbers: Iterable[tuple[str, Decimal | None]]) -> list[str]:
    """The keys whose value is not below 10^16 in absolute value."""
    return [key for key, value in numbers if value is not None and abs(value) >= MONEY_LIMIT]


def _refuse_out_of_range(out: Outcome, keys: list[str], wire: Callable[[str], str]) -> bool:
    """Refuse each out-of-range number (``wire`` names its field); True when there was none."""
    for key in keys:
        fld = wire(key)
        out.add(FIELD, fld, f"{fld} 数值超出允许范围（绝对值须小于10的16次方）", _RANGE_CODES.get(key, "E4000"))
    return not keys


def _check_discounts(lines: list[Line], names: Names, out: Outcome) -> None:
    for i, ln in enumerate(lines):

        def f(key: str, ln: Line = ln) -> str:
            return names.ln(ln.index, key)

        if ln.kind == "2" and (i + 1 >= len(lines) or lines[i + 1].kind != "1"):
            out.add(FIELD, f("kind"), f"{f('kind')} 被折扣行之后必须紧跟折扣行", "E9110")
        if ln.kind != "1":
            continue
        prev = lines[i - 1] if i > 0 else None
        if prev is None or prev.kind != "2":
            out.add(FIELD, f("kind"), f"{f('kind')} 折扣行必须紧挨被折扣行之后", "E9110")
            continue
        if ln.name != prev.name:
            out.add(FIELD, f("name"), f"{f('name')} 折扣行的商品名称必须和被折扣行相同", "E9105")
        if ln.rate != prev.rate:
            out.add(FIELD, f("rate"), f"{f('rate')} 折扣行商品税率必须和被折扣行商品税率相同", "E9112")
        if ln.code != prev.code:
            out.add(FIELD, f("code"), f"{f('code')} 折扣行税收分类编码必须和被折扣行相同", "E4000")
        if ln.qty is not None and ln.qty >= 0:
            out.add(FIELD, f("qty"), f"{f('qty')} 蓝票折扣行商品数量应为负", "E9111")
        if ln.amount is None or prev.amount is None or ln.total is None or prev.total is None:
            continue
        if ln.amount >= 0 or ln.total >= 0 or (ln.tax is not None and ln.tax > 0):
            out.add(AMOUNT, f("amount"), f"{f('amount')} 折扣行金额必须为负数", "E4000")
        elif -ln.amount > prev.amount or -ln.total > prev.total:
            out.add(AMOUNT, f("amount"), f"{f('amount')} 折扣行金额不能大于被折扣行的金额", "E9108")


def _check_totals(draft: Draft, names: Names, out: Outcome) -> None:
    if any(ln.amount is None or ln.tax is None or ln.total is None for ln in draft.lines):
        return
    s_amount, s_tax, s_total = draft.sums()
    expected_tax = sum((ln.amount * ln.rate for ln in draft.lines if ln.amount and ln.rate in RATES), Decimal(0))
    if abs(expected_tax - s_tax) > INVOICE_TAX_TOLERANCE:
        out.add(AMOUNT, names.h("tax"), f"{names.h('tax')} 整票税额误差超过1.27", "E9131")
    if draft.amount is not None and draft.amount != s_amount:
        out.add(AMOUNT, names.h("amount"), f"{names.h('amount')} 合计金额不等于明细金额之和", "E9130")
    if draft.tax is not None and draft.tax != s_tax:
        out.add(AMOUNT, names.h("tax"), f"{names.h('tax')} 合计税额不等于明细税额之和", "E9130")
    if draft.total is not None:
        if draft.total != s_total:
            out.add(AMOUNT, names.h("total"), f"{names.h('total')} 价税合计不等于明细含税金额之和", "E9130")
        if draft.amount is not None and draft.tax is not None and draft.amount + draft.tax != draft.total:
            out.add(AMOUNT, names.h("total"), f"{names.h('total')} 合计金额+合计税额不等于价税合计", "E9130")
    total = draft.total if draft.total is not None else s_total
    if not draft.red and total <= 0:
        out.add(AMOUNT, names.h("total"), f"{names.h('total')} 蓝字发票价税合计必须为正数", "E4000")
    if draft.red and total >= 0:
        out.add(AMOUNT, names.h("total"), f"{names.h('total')} 红字发票价税合计必须为负数", "E4000")
