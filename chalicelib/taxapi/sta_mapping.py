"""``sta`` field mapping, sans-IO: domain objects → the pinyin payloads, reply fields → typed results.

This module owns what the fields *mean* in ``docs/tax-protocol.md``: the ``QDFPSC`` invoice payload
and its ``mxs`` lines, the ``QDHZQRDSQ`` red form payload, the value formats (money, numbers, Shanghai
time), the reply readers (``CXQDFPSCJG`` results, red forms, the credit line, tax codes), the result
state map and the error-code table that turns one ``Response.Error`` into exactly one ``TaxError``.
How the payloads travel (encryption, signature, envelope) is :mod:`chalicelib.taxapi.sta_wire`'s
business; the provider (:mod:`chalicelib.taxapi.sta`) ties the two together.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from chalicelib.domain.china_time import CHINA_TZ as SHANGHAI
from chalicelib.domain.errors import (
    AmbiguousTaxError,
    AuthTaxError,
    DuplicateTaxError,
    PermanentTaxError,
    RetryableTaxError,
    TaxError,
    UnsupportedOperation,
)
from chalicelib.domain.models import (
    BuyerType,
    InvoiceColour,
    InvoiceLine,
    InvoiceOrder,
    InvoiceType,
    ZeroRateFlag,
)
from chalicelib.domain.money import CENT, PRICE_PLACES
from chalicelib.taxapi.base import (
    CreditLine,
    InvoiceResult,
    InvoiceStatus,
    RedForm,
    RedFormRequest,
    RedFormState,
    TaxCodeEntry,
)

#: Asia/Shanghai has had no daylight saving since 1991: a fixed offset avoids a tzdata dependency.
DATETIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
_FIELD_RE: Final = re.compile(r"参数错误\s*[:：]\s*([A-Za-z_][A-Za-z0-9_.\[\]]*)")

# --- error table (docs/tax-protocol.md, "Error codes → taxonomy") ---------------------------------
ERROR_CLASSES: Final[Mapping[str, type[TaxError]]] = {
    "E1001": PermanentTaxError,
    "E1002": PermanentTaxError,
    "E1003": PermanentTaxError,
    "E1004": PermanentTaxError,
    "E1005": PermanentTaxError,
    "E2001": AuthTaxError,
    "E2002": AuthTaxError,
    "E2003": AuthTaxError,
    "E3001": RetryableTaxError,
    "E4001": DuplicateTaxError,
    "E4004": PermanentTaxError,
    "E5001": UnsupportedOperation,
}

QUERY_STATUS: Final[Mapping[str, InvoiceStatus]] = {
    "01": InvoiceStatus.PENDING,
    "02": InvoiceStatus.ISSUED,
    "03": InvoiceStatus.FAILED,
}

ZERO_RATE_CODES: Final[Mapping[ZeroRateFlag, str]] = {
    ZeroRateFlag.EXEMPT: "1",
    ZeroRateFlag.NOT_TAXABLE: "2",
    ZeroRateFlag.ZERO_RATE: "3",
}
ZERO_RATE_POLICY_TEXT: Final[Mapping[ZeroRateFlag, str]] = {
    ZeroRateFlag.EXEMPT: "免税",
    ZeroRateFlag.NOT_TAXABLE: "不征税",
}


# --- value formatting ----------------------------------------------------------------------------
def format_money(value: Decimal) -> str:
    """Two decimals, no rounding: an amount with more than 2 decimals is a bug upstream."""
    if value != value.quantize(CENT):
        raise ValueError("money must have at most 2 decimals")
    return str(value.quantize(CENT) + Decimal(0))  # + 0 turns -0.00 into 0.00


def format_number(value: Decimal) -> str:
    """Quantities, unit prices and rates: plain notation, at most 8 decimals, no trailing zeros."""
    if value != value.quantize(PRICE_PLACES):
        raise ValueError("quantities, unit prices and rates have at most 8 decimals")
    normal = (value + Decimal(0)).normalize()
    return format(normal, "f")


def opt_number(value: Decimal | None) -> str:
    return "" if value is None else format_number(value)


def format_datetime(value: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in Asia/Shanghai (naive datetimes are taken as Shanghai time)."""
    if value.tzinfo is not None:
        value = value.astimezone(SHANGHAI)
    return value.strftime(DATETIME_FORMAT)


# --- request payloads ----------------------------------------------------------------------------
def invoice_fields(order: InvoiceOrder, serial: str, *, seller_tax_id: str) -> dict[str, Any]:
    """The ``QDFPSC`` payload, keys in the documented order (the seller is checked by the caller)."""
    red = order.colour is InvoiceColour.RED
    if not serial:
        raise ValueError("serial is required")
    if red:
        if not order.original_invoice_number or not order.red_form_id:
            raise ValueError("a red invoice needs the original invoice number and the red form id")
        if order.total > 0 or any(line.total > 0 for line in order.lines):
            raise ValueError("a red invoice carries negative amounts")
        if any(line.is_discount for line in order.lines):
            raise ValueError("a red invoice carries no discount lines")
        if any(line.original_line_no is None for line in order.lines):
            raise ValueError("every red line names the original line it reverses")
    seller, buyer = order.seller, order.buyer
    return {
        "fpqqlsh": serial,
        "lzfpbz": "1" if red else "0",
        "fppz": "01" if order.invoice_type is InvoiceType.SPECIAL else "02",
        "xsfnsrsbh": seller_tax_id,
        "xsfmc": seller.name,
        "xsfdz": seller.address or "",
        "xsfdh": seller.phone or "",
        "xsfkhh": seller.bank or "",
        "xsfzh": seller.account or "",
        "gmfnsrsbh": buyer.tax_id or "",
        "gmfmc": buyer.name,
        "gmfdz": buyer.address or "",
        "gmfdh": buyer.phone or "",
        "gmfkhh": buyer.bank or "",
        "gmfzh": buyer.account or "",
        "gmfzrrbs": "Y" if buyer.type is BuyerType.INDIVIDUAL else "N",
        "hjje": format_money(order.total_amount),
        "hjse": format_money(order.total_tax),
        "jshj": format_money(order.total),
        "kpr": order.issuer,
        "fhr": order.reviewer or "",
        "skr": order.payee or "",
        "bz": order.remark or "",
        "ddh": order.order_id,
        "dylzfphm": (order.original_invoice_number or "") if red else "",
        "hzqrdbh": (order.red_form_id or "") if red else "",
        "mxs": [line_payload(i, line, order.lines, red=red) for i, line in enumerate(order.lines)],
    }


def line_payload(index: int, line: InvoiceLine, lines: Sequence[InvoiceLine], *, red: bool) -> dict[str, Any]:
    followed_by_discount = index + 1 < len(lines) and lines[index + 1].is_discount
    if line.is_discount:
        if index == 0 or lines[index - 1].is_discount:
            raise ValueError("a discount line must directly follow the line it discounts")
        kind = "1"
    else:
        kind = "2" if followed_by_discount else "0"
    zero = line.zero_rate_flag
    policy = line.favoured_policy or (ZERO_RATE_POLICY_TEXT.get(zero) if zero else None) or ""
    return {
        "xh": index + 1,
        "spmc": line.display_name,
        "ssflbm": line.tax_code,
        "ggxh": line.specification or "",
        "dw": line.unit or "",
        "spsl": opt_number(line.quantity),
        "dj": opt_number(line.unit_price),
        "je": format_money(line.amount),
        "sl": format_number(line.tax_rate),
        "se": format_money(line.tax),
        "hsje": format_money(line.total),
        "fphxz": kind,
        "yhzcbs": "1" if policy else "0",
        "lslbs": ZERO_RATE_CODES.get(zero, "") if zero else "",
        "zzstsgl": policy,
        "dylzfpmxxh": line.original_line_no if red else None,
    }


def red_form_fields(form: RedFormRequest, *, seller_tax_id: str) -> dict[str, Any]:
    """The ``QDHZQRDSQ`` payload (the seller is checked by the caller)."""
    order = form.order
    if order.total_amount > 0 or order.total_tax > 0:
        raise ValueError("a red form carries negative amounts")
    lines = []
    for line in order.lines:
        if line.original_line_no is None:
            raise ValueError("every red form line names the original line it reverses")
        lines.append(
            {
                "lzmxxh": line.original_line_no,
                "spmc": line.display_name,
                "ssflbm": line.tax_code,
                "spsl": opt_number(line.quantity),
                "dj": opt_number(line.unit_price),
                "je": format_money(line.amount),
                "sl": format_number(line.tax_rate),
                "se": format_money(line.tax),
            }
        )
    return {
        "sqlsh": form.serial,
        "lrfsf": "0",
        "xsfnsrsbh": seller_tax_id,
        "gmfnsrsbh": form.buyer_tax_id or "",
        "gmfmc": form.buyer_name,
        "lzfphm": form.original_invoice_number,
        "lzkprq": format_datetime(form.original_issued_at),
        "hzcxje": format_money(order.total_amount),
        "hzcxse": format_money(order.total_tax),
        "chyydm": form.reason.value,
        "mxs": lines,
    }


# --- reply fields --------------------------------------------------------------------------------
def text(value: Any) -> str | None:
    """A reply field as text; absent / null / empty → None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise AmbiguousTaxError(f"unexpected value type {type(value).__name__} in reply")
    stripped = str(value).strip()
    return stripped or None


def money(value: Any, name: str) -> Decimal | None:
    text_value = text(value)
    if text_value is None:
        return None
    try:
        result = Decimal(text_value)
    except ArithmeticError:
        raise AmbiguousTaxError(f"reply field {name} is not a number") from None
    if not result.is_finite():
        raise AmbiguousTaxError(f"reply field {name} is not a number")
    return result


def require_money(data: Mapping[str, Any], name: str) -> Decimal:
    value = money(data.get(name), name)
    if value is None:
        raise AmbiguousTaxError(f"reply lacks {name}")
    return value


def require_text(data: Mapping[str, Any], name: str) -> str:
    value = text(data.get(name))
    if value is None:
        raise AmbiguousTaxError(f"reply lacks {name}")
    return value


def reply_datetime(value: Any) -> datetime | None:
    text_value = text(value)
    if text_value is None:
        return None
    try:
        return datetime.strptime(text_value, DATETIME_FORMAT).replace(tzinfo=SHANGHAI)
    except ValueError:
        raise AmbiguousTaxError("reply field kprq is not YYYY-MM-DD HH:MM:SS") from None


def objects(value: Any, name: str) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise AmbiguousTaxError(f"reply field {name} is not a list of objects")
    return value


def first(sources: Iterable[Mapping[str, Any]], name: str) -> str | None:
    for source in sources:
        value = text(source.get(name))
        if value is not None:
            return value
    return None


# --- replies → results ---------------------------------------------------------------------------
def query_results(data: Mapping[str, Any]) -> list[InvoiceResult]:
    """The ``jgs`` of a ``CXQDFPSCJG`` reply."""
    results = []
    for item in objects(data.get("jgs"), "jgs"):
        zt = text(item.get("zt"))
        status = QUERY_STATUS.get(zt or "")
        if status is None:
            raise AmbiguousTaxError("CXQDFPSCJG: unknown result state")
        number = text(item.get("fphm"))
        if status is InvoiceStatus.ISSUED and (number is None or not re.fullmatch(r"\d{20}", number)):
            raise AmbiguousTaxError("CXQDFPSCJG: an issued result lacks a 20-digit fphm")
        results.append(
            InvoiceResult(
                serial=require_text(item, "fpqqlsh"),
                order_no=text(item.get("ddh")),
                status=status,
                invoice_number=number,
                issued_at=reply_datetime(item.get("kprq")),
                total_amount=money(item.get("hjje"), "hjje"),
                total_tax=money(item.get("hjse"), "hjse"),
                pdf_url=text(item.get("pdfurl")),
                ofd_url=text(item.get("ofdurl")),
                xml_url=text(item.get("xmlurl")),
                failure_reason=text(item.get("sbyy")),
                provider_status=zt,
            )
        )
    return results


def red_form(data: Mapping[str, Any], service: str) -> RedForm:
    """The red form of a ``QDHZQRDSQ`` / ``QDHZQRDQR`` / ``CXHZQRD`` reply."""
    state_code = require_text(data, "hzqrxxztdm")
    try:
        state = RedFormState(state_code)
    except ValueError:
        raise AmbiguousTaxError(f"{service}: unknown red form state") from None
    return RedForm(
        form_id=require_text(data, "hzqrdbh"),
        state=state,
        original_invoice_number=text(data.get("lzfphm")),
        red_amount=money(data.get("hzcxje"), "hzcxje"),
        red_tax=money(data.get("hzcxse"), "hzcxse"),
        provider_status=state_code,
    )


def credit_line(data: Mapping[str, Any]) -> CreditLine:
    """The ``CXSXED`` reply."""
    return CreditLine(
        total=require_money(data, "zsxed"),
        used=require_money(data, "ysyed"),
        remaining=require_money(data, "syed"),
    )


def tax_code_entries(data: Mapping[str, Any]) -> list[TaxCodeEntry]:
    """The ``mxs`` of a ``CXSSFLBM`` reply."""
    entries = []
    for item in objects(data.get("mxs"), "mxs"):
        rates = item.get("sl") or []
        if not isinstance(rates, list):
            raise AmbiguousTaxError("CXSSFLBM: sl is not a list")
        parsed_rates = tuple(r for r in (money(v, "sl") for v in rates) if r is not None)
        entries.append(
            TaxCodeEntry(
                code=require_text(item, "ssflbm"),
                name=text(item.get("spmc")) or "",
                short_name=text(item.get("sphfwjc")) or "",
                rates=parsed_rates,
            )
        )
    return entries


def map_error(service: str, error: Any, data: Any) -> TaxError:
    """One ``Response.Error`` → the TaxError the table in docs/tax-protocol.md names."""
    if not isinstance(error, dict):
        return AmbiguousTaxError(f"{service}: malformed Error")
    code = text(error.get("code"))
    message = text(error.get("Message")) or text(error.get("message")) or ""
    if code is None:
        return AmbiguousTaxError(f"{service}: Error without a code")
    message_text = f"{service}: {code} {message}".strip()
    # A code the protocol does not document is a reply we cannot classify: Ambiguous (query before
    # anything is sent again), never Permanent — a create may have been acted on.
    cls = ERROR_CLASSES.get(code, AmbiguousTaxError)
    if cls is DuplicateTaxError:
        # The existing invoice rides in Data (documented) or, from lenient peers, in Error itself.
        sources = [s for s in (data, error) if isinstance(s, dict)]
        existing = first(sources, "fphm") or first(sources, "fpqqlsh")
        return DuplicateTaxError(message_text, provider_code=code, existing=existing)
    field = None
    if code == "E1001":
        match = _FIELD_RE.search(message)
        field = match.group(1) if match else None
    if cls is AmbiguousTaxError:
        return AmbiguousTaxError(f"{message_text} (an undocumented code)", provider_code=code, code="tax_unknown_reply")
    return cls(message_text, provider_code=code, field=field)
