"""The neutral invoice draft of the sandbox and the values it is parsed from, stdlib + decimal only.

Both protocol front ends parse their wire payload into one ``Draft`` (header fields and ``Line`` s),
recording any malformed value as a ``Violation`` in an ``Outcome`` on the way (``parse_decimal``,
``text``); ``Names`` carries the wire name of every neutral field so a violation speaks the caller's
protocol. A violation has a *category* (FIELD, AMOUNT, TAXCODE, LIMIT, RED) the STA front end maps to
its error code and the Nuonuo code to use on that front end. The rules that judge a draft live in
:mod:`chalicelib.sandbox.rules`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

FIELD = "FIELD"
AMOUNT = "AMOUNT"
TAXCODE = "TAXCODE"
LIMIT = "LIMIT"
RED = "RED"


@dataclass(frozen=True)
class Violation:
    category: str  # FIELD | AMOUNT | TAXCODE | LIMIT | RED
    field: str  # the wire field name, e.g. "mxs[0].je" or "invoiceDetail[0].tax"
    message: str
    nuonuo_code: str = "E4000"


@dataclass
class Names:
    """Wire names of the neutral fields, so violations speak the caller's protocol."""

    header: dict[str, str]
    line: dict[str, str]
    lines: str
    line_name_max: int | None = None

    def h(self, key: str) -> str:
        return self.header.get(key, key)

    def ln(self, index: int, key: str) -> str:
        return f"{self.lines}[{index}].{self.line.get(key, key)}"


@dataclass
class Line:
    index: int
    name: str = ""
    code: str = ""
    qty: Decimal | None = None
    price: Decimal | None = None
    price_includes_tax: bool = False
    amount: Decimal | None = None
    rate: Decimal | None = None
    tax: Decimal | None = None
    total: Decimal | None = None
    kind: str = "0"  # 0 normal, 1 discount line, 2 discounted line
    zero_rate_flag: str = ""  # "", "1" exempt, "2" not taxable, "3" ordinary zero rate
    original_line_no: int | None = None


@dataclass
class Draft:
    red: bool
    special: bool
    seller_tax_id: str
    buyer_name: str
    buyer_tax_id: str
    buyer_individual: bool | None
    seller_name: str | None = None
    buyer_address: str = ""
    buyer_phone: str = ""
    buyer_bank: str = ""
    buyer_account: str = ""
    remark: str = ""
    amount: Decimal | None = None  # declared totals (STA); None when the protocol has none (Nuonuo)
    tax: Decimal | None = None
    total: Decimal | None = None
    lines: list[Line] = field(default_factory=list)

    def sums(self) -> tuple[Decimal, Decimal, Decimal]:
        amount = sum((ln.amount or Decimal(0) for ln in self.lines), Decimal(0))
        tax = sum((ln.tax or Decimal(0) for ln in self.lines), Decimal(0))
        total = sum((ln.total or Decimal(0) for ln in self.lines), Decimal(0))
        return amount, tax, total


@dataclass
class Outcome:
    violations: list[Violation] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, category: str, fld: str, message: str, nuonuo_code: str = "E4000") -> None:
        self.violations.append(Violation(category, fld, message, nuonuo_code))

    @property
    def ok(self) -> bool:
        return not self.violations


# --- value parsing (protocol front ends use these while building a Draft) ---------------------------


def decimals_of(d: Decimal) -> int:
    exp = d.as_tuple().exponent
    return -exp if isinstance(exp, int) and exp < 0 else 0


def parse_decimal(out: Outcome, raw: Any, fld: str, places: int, *, required: bool = False) -> Decimal | None:
    """A decimal from a JSON string/number with at most ``places`` decimals, or a FIELD violation."""
    if raw is None or raw == "":
        if required:
            out.add(FIELD, fld, f"{fld} 不能为空")
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
        out.add(FIELD, fld, f"{fld} 必须是数字字符串")
        return None
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        out.add(FIELD, fld, f"{fld} 不是合法数字")
        return None
    if not value.is_finite():
        out.add(FIELD, fld, f"{fld} 不是合法数字")
        return None
    if decimals_of(value) > places:
        out.add(FIELD, fld, f"{fld} 最多{places}位小数")
        return None
    return value


def text(raw: Any) -> str:
    if raw is None:
        return ""
    return raw if isinstance(raw, str) else str(raw)
