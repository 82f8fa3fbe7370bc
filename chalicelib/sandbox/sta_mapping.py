"""The STA front end's field mapping: wire payloads → the neutral draft, records → reply fields, and
refusal kinds / violation categories → the protocol's error codes (``docs/tax-protocol.md``).

``parse_invoice`` reads a QDFPSC payload and ``parse_red_form_lines`` the lines of a QDHZQRDSQ one;
``NAMES`` gives the rules the pinyin name of every neutral field; ``result_fields`` and
``form_fields`` write the reply ``Data``; ``StaError`` is an error reply (its code and message), and
``CODES`` the code a refusal or a violation becomes. Routing, the envelope and the services are in
:mod:`chalicelib.sandbox.sta`.
"""

# ruff: noqa: PLR0912 - rule checks are long flat lists of independent conditions

from __future__ import annotations

from typing import Any

from chalicelib.sandbox import rules
from chalicelib.sandbox.clock import china_time
from chalicelib.sandbox.draft import RED, Draft, Line, Names, Outcome, parse_decimal, text
from chalicelib.sandbox.records import (
    AMOUNT,
    AUTH,
    FAILED,
    FIELD,
    ISSUED,
    LIMIT,
    NOT_FOUND,
    TAXCODE,
    UNSUPPORTED,
    InvoiceRecord,
    RedFormRecord,
    money,
)

CODES = {
    FIELD: "E1001",
    AMOUNT: "E1002",
    TAXCODE: "E1003",
    LIMIT: "E1004",
    RED: "E1005",
    AUTH: "E2001",
    NOT_FOUND: "E4004",
    UNSUPPORTED: "E5001",
}

NAMES = Names(
    header={
        "seller_tax_id": "xsfnsrsbh",
        "seller_name": "xsfmc",
        "buyer_tax_id": "gmfnsrsbh",
        "buyer_name": "gmfmc",
        "buyer_address": "gmfdz",
        "buyer_phone": "gmfdh",
        "buyer_bank": "gmfkhh",
        "buyer_account": "gmfzh",
        "remark": "bz",
        "amount": "hjje",
        "tax": "hjse",
        "total": "jshj",
    },
    line={
        "name": "spmc",
        "code": "ssflbm",
        "qty": "spsl",
        "price": "dj",
        "amount": "je",
        "rate": "sl",
        "tax": "se",
        "total": "hsje",
        "kind": "fphxz",
        "zero_rate_flag": "lslbs",
    },
    lines="mxs",
)


class StaError(Exception):
    def __init__(self, code: str, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


def field_error(fld: str, what: str) -> StaError:
    return StaError("E1001", f"参数错误: {fld} {what}")


def raise_first(out: Outcome) -> None:
    """The first violation in ``out`` as an error reply (E1001 messages name the field)."""
    if out.ok:
        return
    v = out.violations[0]
    code = CODES.get(v.category, "E1001")
    msg = f"参数错误: {v.message}" if code == "E1001" else v.message
    raise StaError(code, msg)


def file_urls(base_url: str, number: str) -> dict[str, str]:
    base = f"{base_url}/files/{number}"
    return {"pdfurl": f"{base}.pdf", "ofdurl": f"{base}.ofd", "xmlurl": f"{base}.xml"}


def result_fields(rec: InvoiceRecord, base_url: str) -> dict[str, Any]:
    """One ``jgs`` item of a CXQDFPSCJG reply."""
    zt = {ISSUED: "02", FAILED: "03"}.get(rec.status, "01")
    urls = file_urls(base_url, rec.number) if rec.status == ISSUED else {"pdfurl": "", "ofdurl": "", "xmlurl": ""}
    return {
        "fpqqlsh": rec.serial,
        "ddh": rec.order_no,
        "zt": zt,
        "fphm": rec.number,
        "kprq": china_time(rec.issued_at) if rec.issued_at is not None else "",
        "hjje": money(rec.amount),
        "hjse": money(rec.tax),
        "sbyy": rec.failure,
        **urls,
    }


def form_fields(form: RedFormRecord) -> dict[str, Any]:
    """The ``Data`` of a red form reply (QDHZQRDSQ, QDHZQRDQR, CXHZQRD)."""
    return {"hzqrdbh": form.form_id, "hzqrxxztdm": form.state, "lzfphm": form.blue_number}


def parse_invoice(p: dict[str, Any], out: Outcome) -> Draft:
    """QDFPSC payload → neutral Draft; malformed values become violations in ``out``."""
    lzfpbz = text(p.get("lzfpbz"))
    if lzfpbz not in ("0", "1"):
        out.add(rules.FIELD, "lzfpbz", "lzfpbz 只能为0(蓝字)或1(红字)")
    fppz = text(p.get("fppz"))
    if fppz not in ("01", "02"):
        out.add(rules.FIELD, "fppz", "fppz 只能为01(专票)或02(普票)")
    zrr = text(p.get("gmfzrrbs"))
    if zrr not in ("", "Y", "N"):
        out.add(rules.FIELD, "gmfzrrbs", "gmfzrrbs 只能为Y或N")
    buyer_tax_id = text(p.get("gmfnsrsbh"))
    individual = {"Y": True, "N": False}.get(zrr, not buyer_tax_id)
    draft = Draft(
        red=lzfpbz == "1",
        special=fppz == "01",
        seller_tax_id=text(p.get("xsfnsrsbh")),
        seller_name=text(p.get("xsfmc")),
        buyer_name=text(p.get("gmfmc")),
        buyer_tax_id=buyer_tax_id,
        buyer_individual=individual,
        buyer_address=text(p.get("gmfdz")),
        buyer_phone=text(p.get("gmfdh")),
        buyer_bank=text(p.get("gmfkhh")),
        buyer_account=text(p.get("gmfzh")),
        remark=text(p.get("bz")),
        amount=parse_decimal(out, p.get("hjje"), "hjje", 2, required=True),
        tax=parse_decimal(out, p.get("hjse"), "hjse", 2, required=True),
        total=parse_decimal(out, p.get("jshj"), "jshj", 2, required=True),
    )
    raw_lines = p.get("mxs")
    if not isinstance(raw_lines, list):
        out.add(rules.FIELD, "mxs", "mxs 必须是数组")
        return draft
    if len(raw_lines) > rules.MAX_LINES:
        draft.lines = [Line(index=i) for i in range(len(raw_lines))]
        return draft
    for i, raw in enumerate(raw_lines):
        if not isinstance(raw, dict):
            out.add(rules.FIELD, f"mxs[{i}]", f"mxs[{i}] 必须是对象")
            continue

        def f(key: str, i: int = i) -> str:
            return f"mxs[{i}].{key}"

        ln = Line(
            index=i,
            name=text(raw.get("spmc")),
            code=text(raw.get("ssflbm")),
            kind=text(raw.get("fphxz") or "0"),
            zero_rate_flag=text(raw.get("lslbs")),
        )
        ln.qty = parse_decimal(out, raw.get("spsl"), f("spsl"), 8)
        ln.price = parse_decimal(out, raw.get("dj"), f("dj"), 8)
        ln.amount = parse_decimal(out, raw.get("je"), f("je"), 2, required=True)
        ln.rate = parse_decimal(out, raw.get("sl"), f("sl"), 3, required=True)
        ln.tax = parse_decimal(out, raw.get("se"), f("se"), 2, required=True)
        ln.total = parse_decimal(out, raw.get("hsje"), f("hsje"), 2, required=True)
        if text(raw.get("yhzcbs")) not in ("", "0", "1"):
            out.add(rules.FIELD, f("yhzcbs"), f"{f('yhzcbs')} 只能为0或1")
        if text(raw.get("yhzcbs")) == "1" and not text(raw.get("zzstsgl")):
            out.add(rules.FIELD, f("zzstsgl"), f"{f('zzstsgl')} 享受优惠政策时必须填写增值税特殊管理")
        if ln.zero_rate_flag not in ("", "1", "2", "3"):
            out.add(rules.FIELD, f("lslbs"), f"{f('lslbs')} 只能为空、1、2或3")
        orig = text(raw.get("dylzfpmxxh"))
        if orig:
            if orig.isdigit():
                ln.original_line_no = int(orig)
            else:
                out.add(rules.FIELD, f("dylzfpmxxh"), f"{f('dylzfpmxxh')} 必须是数字")
        draft.lines.append(ln)
    return draft


def parse_red_form_lines(p: dict[str, Any], out: Outcome) -> list[Line]:
    """The ``mxs`` of a QDHZQRDSQ payload → red Lines; malformed values become violations in ``out``."""
    raw_lines = p.get("mxs")
    if not isinstance(raw_lines, list) or not raw_lines:
        raise field_error("mxs", "红冲明细不能为空")
    lines = []
    for i, raw in enumerate(raw_lines):
        if not isinstance(raw, dict):
            raise field_error(f"mxs[{i}]", "必须是对象")
        ln = Line(index=i, name=text(raw.get("spmc")), code=text(raw.get("ssflbm")), kind="0")
        ln.qty = parse_decimal(out, raw.get("spsl"), f"mxs[{i}].spsl", 8)
        ln.price = parse_decimal(out, raw.get("dj"), f"mxs[{i}].dj", 8)
        ln.amount = parse_decimal(out, raw.get("je"), f"mxs[{i}].je", 2, required=True)
        ln.rate = parse_decimal(out, raw.get("sl"), f"mxs[{i}].sl", 3, required=True)
        ln.tax = parse_decimal(out, raw.get("se"), f"mxs[{i}].se", 2, required=True)
        no = text(raw.get("lzmxxh"))
        if not no.isdigit():
            out.add(rules.FIELD, f"mxs[{i}].lzmxxh", f"mxs[{i}].lzmxxh 必须为蓝字发票明细序号")
        else:
            ln.original_line_no = int(no)
        if ln.amount is not None and ln.tax is not None:
            ln.total = ln.amount + ln.tax
            if ln.rate is not None and abs(ln.amount * ln.rate - ln.tax) > rules.LINE_TAX_TOLERANCE:
                out.add(rules.AMOUNT, f"mxs[{i}].se", f"mxs[{i}].se 金额*税率-税额大于0.06")
        lines.append(ln)
    return lines
