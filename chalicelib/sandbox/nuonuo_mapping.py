"""The Nuonuo front end's field mapping: wire payloads → the neutral draft, records → reply fields,
and the code tables (invoice lines, red reasons, statuses) of Nuonuo's official documents.

``parse_order`` reads requestBillingNew's ``order`` (computing amounts from price × num when they are
omitted, as Nuonuo does) and ``parse_red_details`` saveInvoiceRedConfirm's ``detail``; ``NAMES`` gives
the rules Nuonuo's name of every neutral field; ``result_fields`` and ``form_item_fields`` write the
replies' ``result``; ``NuonuoError`` is an error reply (code, describe, result). Authentication,
the envelope and the methods are in :mod:`chalicelib.sandbox.nuonuo`.
"""

# ruff: noqa: PLR0912 - request checks are long flat lists of independent conditions

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from chalicelib.sandbox import rules
from chalicelib.sandbox.clock import china_time
from chalicelib.sandbox.config import Seller
from chalicelib.sandbox.draft import Draft, Line, Names, Outcome, parse_decimal, text
from chalicelib.sandbox.records import FAILED, ISSUED, VOIDED, InvoiceRecord, RedFormRecord, money
from chalicelib.sandbox.rules import TaxCodeTable

INVOICE_LINES = {"p", "c", "s", "e", "f", "r", "b", "j", "u", "bs", "pc", "es", "ec"}
SPECIAL_LINES = {"s", "b", "bs", "es"}
#: Nuonuo's redReason (1 销货退回, 2 开票有误, 3 服务中止, 4 销售折让) → the bureau's chyydm.
RED_REASONS = {"1": "02", "2": "01", "3": "03", "4": "04"}
RED_REASONS_BACK = {v: k for k, v in RED_REASONS.items()}
STATUS_TEXT = {"20": "开票中", "2": "开票完成（最终状态）", "22": "开票失败", "3": "发票已作废"}

NAMES = Names(
    header={
        "seller_tax_id": "salerTaxNum",
        "buyer_tax_id": "buyerTaxNum",
        "buyer_name": "buyerName",
        "buyer_address": "buyerAddress",
        "buyer_phone": "buyerTel",
        "buyer_bank": "buyerAccount",
        "remark": "remark",
        "amount": "taxExcludedAmount",
        "tax": "tax",
        "total": "taxIncludedAmount",
    },
    line={
        "name": "goodsName",
        "code": "goodsCode",
        "qty": "num",
        "price": "price",
        "amount": "taxExcludedAmount",
        "rate": "taxRate",
        "tax": "tax",
        "total": "taxIncludedAmount",
        "kind": "invoiceLineProperty",
        "zero_rate_flag": "zeroRateFlag",
    },
    lines="invoiceDetail",
    line_name_max=90,
)


class NuonuoError(Exception):
    def __init__(self, code: str, describe: str, result: Any = None) -> None:
        super().__init__(describe)
        self.code = code
        self.describe = describe
        self.result = result


def file_urls(base_url: str, rec: InvoiceRecord) -> dict[str, str]:
    if rec.status != ISSUED:
        return {"pdfUrl": "", "ofdUrl": "", "xmlUrl": ""}
    base = f"{base_url}/files/{rec.number}"
    return {"pdfUrl": f"{base}.pdf", "ofdUrl": f"{base}.ofd", "xmlUrl": f"{base}.xml"}


def result_fields(
    rec: InvoiceRecord, details: bool, *, base_url: str, seller: Seller | None, table: TaxCodeTable
) -> dict[str, Any]:
    """One item of queryInvoiceResult's ``result`` (``invoiceItems`` when ``details``)."""
    status = {ISSUED: "2", FAILED: "22", VOIDED: "3"}.get(rec.status, "20")
    d = rec.draft
    out: dict[str, Any] = {
        "serialNo": rec.provider_ref,
        "orderNo": rec.order_no,
        "status": status,
        "statusMsg": STATUS_TEXT[status],
        "failCause": rec.failure,
        **file_urls(base_url, rec),
        "pictureUrl": "",
        "invoiceTime": int(rec.issued_at * 1000) if rec.issued_at is not None else None,
        "invoiceCode": "",
        "invoiceNo": rec.number,
        "allElectronicInvoiceNumber": rec.number,
        "exTaxAmount": money(rec.amount),
        "taxAmount": money(rec.tax),
        "orderAmount": money(rec.total),
        "payerName": d.buyer_name,
        "payerTaxNo": d.buyer_tax_id,
        "address": d.buyer_address,
        "telephone": d.buyer_phone,
        "bankAccount": d.buyer_bank,
        "invoiceKind": "电子发票(增值税专用发票)" if rec.special else "电子发票(普通发票)",
        "checkCode": "",
        "qrCode": "",
        "salerTaxNum": rec.seller_tax_id,
        "saleName": seller.name if seller else "",
        "remark": d.remark,
        "invoiceType": "2" if rec.red else "1",
        "oldInvoiceCode": "",
        "oldInvoiceNo": rec.blue_number,
        "oldEleInvoiceNumber": rec.blue_number,
    }
    if details:
        out["invoiceItems"] = [
            {
                "itemName": ln.name,
                "itemCodeAbb": (table.get(ln.code).short_name if table.get(ln.code) else ""),  # type: ignore[union-attr]
                "itemUnit": "",
                "itemPrice": str(ln.price) if ln.price is not None else "",
                "itemTaxRate": str(ln.rate) if ln.rate is not None else "",
                "itemNum": str(ln.qty) if ln.qty is not None else "",
                "itemAmount": money(ln.total if ln.price_includes_tax else ln.amount)
                if ln.amount is not None and ln.total is not None
                else "",
                "itemTaxAmount": money(ln.tax) if ln.tax is not None else "",
                "itemSpec": "",
                "itemCode": ln.code,
                "isIncludeTax": "true" if ln.price_includes_tax else "false",
                "invoiceLineProperty": ln.kind,
                "zeroRateFlag": "",
                "favouredPolicyFlag": "",
            }
            for ln in d.lines
        ]
    return out


def form_item_fields(
    form: RedFormRecord, *, blue: InvoiceRecord | None, seller: Seller | None, red: InvoiceRecord | None
) -> dict[str, Any]:
    """One red form as queryInvoiceRedConfirm / confirm / confirmInfoCancel show it."""
    return {
        "billId": form.serial,
        "billNo": form.form_id,
        "billUuid": form.uuid,
        "billStatus": form.state,
        "openStatus": 1 if red is not None else 0,
        "applySource": int(form.apply_source),
        "blueInvoiceLine": "bs" if blue and blue.special else "pc",
        "blueInvoiceNumber": form.blue_number,
        "blueElecInvoiceNumber": form.blue_number,
        "blueInvoiceTime": china_time(blue.issued_at) if blue and blue.issued_at else "",
        "billTime": china_time(form.applied_at),
        "confirmTime": china_time(form.confirmed_at) if form.confirmed_at else "",
        "sellerTaxNo": form.seller_tax_id,
        "sellerName": seller.name if seller else "",
        "buyerTaxNo": form.buyer_tax_id,
        "buyerName": form.buyer_name,
        "taxExcludedAmount": money(form.amount),
        "taxAmount": money(form.tax),
        "redReason": RED_REASONS_BACK.get(form.reason, ""),
        "invoiceSerialNum": red.provider_ref if red is not None else "",
    }


def stock_rows(update_time: str) -> list[dict[str, Any]]:
    """getInvoiceStock's ``result``: an unlimited stock of pc and bs invoices."""
    return [
        {
            "extensionNumber": 0,
            "machineCode": "",
            "terminalNumber": "",
            "invoiceLine": line,
            "remainNum": 99999,
            "typeCode": "",
            "invoiceNumStart": "",
            "invoiceNumEnd": "",
            "updateTime": update_time,
        }
        for line in ("pc", "bs")
    ]


def _q2(d: Decimal) -> Decimal:
    return d.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def parse_order(order: dict[str, Any], out: Outcome) -> Draft:
    """requestBillingNew ``order`` → neutral Draft (amounts computed from price × num when omitted)."""
    line_kind = text(order.get("invoiceLine") or "p")
    if line_kind not in INVOICE_LINES:
        out.add(rules.FIELD, "invoiceLine", "invoiceLine 发票种类不正确", "E4000")
    for fld, limit in (("clerk", 20), ("invoiceDate", 20)):
        value = text(order.get(fld))
        if not value or len(value) > limit:
            out.add(rules.FIELD, fld, f"{fld} 不能为空且不超过{limit}个字符")
    push = text(order.get("pushMode"))
    if push in ("1", "2") and not text(order.get("buyerPhone")):
        out.add(rules.FIELD, "buyerPhone", "buyerPhone 推送方式为手机时必填")
    if push in ("0", "2") and not text(order.get("email")):
        out.add(rules.FIELD, "email", "email 推送方式为邮箱时必填")
    if len(text(order.get("email"))) > 50:
        out.add(rules.FIELD, "email", "购方邮箱不能超过50位", "E9104")
    draft = Draft(
        red=text(order.get("invoiceType")) == "2",
        special=line_kind in SPECIAL_LINES,
        seller_tax_id=text(order.get("salerTaxNum")),
        buyer_name=text(order.get("buyerName")),
        buyer_tax_id=text(order.get("buyerTaxNum")),
        buyer_individual=None,
        buyer_address=text(order.get("buyerAddress")),
        buyer_phone=text(order.get("buyerTel")),
        buyer_bank=text(order.get("buyerAccount")),
        remark=text(order.get("remark")),
    )
    raw_lines = order.get("invoiceDetail")
    if not isinstance(raw_lines, list):
        out.add(rules.FIELD, "invoiceDetail", "商品详情为空", "E9122")
        return draft
    if len(raw_lines) > rules.MAX_LINES:
        draft.lines = [Line(index=i) for i in range(len(raw_lines))]
        return draft
    for i, raw in enumerate(raw_lines):
        if not isinstance(raw, dict):
            out.add(rules.FIELD, f"invoiceDetail[{i}]", f"invoiceDetail[{i}] 必须是对象")
            continue

        def f(key: str, i: int = i) -> str:
            return f"invoiceDetail[{i}].{key}"

        with_tax = text(raw.get("withTaxFlag"))
        if with_tax not in ("0", "1"):
            out.add(rules.FIELD, f("withTaxFlag"), f"{f('withTaxFlag')} 单价含税标志只能为0或1")
        zero_flag = text(raw.get("zeroRateFlag"))
        policy = text(raw.get("favouredPolicyFlag"))
        if not zero_flag:
            zero_flag = {"03": "1", "04": "2"}.get(policy, "")
        if zero_flag not in ("", "1", "2", "3"):
            out.add(rules.FIELD, f("zeroRateFlag"), f"{f('zeroRateFlag')} 只能为空、1、2或3")
        ln = Line(
            index=i,
            name=text(raw.get("goodsName")),
            code=text(raw.get("goodsCode")),
            kind=text(raw.get("invoiceLineProperty") or "0"),
            zero_rate_flag=zero_flag,
            price_includes_tax=with_tax == "1",
        )
        ln.qty = parse_decimal(out, raw.get("num"), f("num"), 8)
        ln.price = parse_decimal(out, raw.get("price"), f("price"), 8)
        ln.rate = parse_decimal(out, raw.get("taxRate"), f("taxRate"), 3, required=True)
        ln.amount = parse_decimal(out, raw.get("taxExcludedAmount"), f("taxExcludedAmount"), 2)
        ln.tax = parse_decimal(out, raw.get("tax"), f("tax"), 2)
        ln.total = parse_decimal(out, raw.get("taxIncludedAmount"), f("taxIncludedAmount"), 2)
        if None in (ln.amount, ln.tax, ln.total):
            if ln.price is None or ln.qty is None or ln.rate is None:
                out.add(rules.FIELD, f("price"), "项目单价为空时，含税金额、不含税金额、税额都不能为空", "E9123")
            else:
                _fill_amounts(ln)
        draft.lines.append(ln)
    return draft


def _fill_amounts(ln: Line) -> None:
    """Nuonuo computes missing amounts from price × num (documented: may differ from the real values)."""
    assert ln.price is not None and ln.qty is not None and ln.rate is not None
    base = _q2(ln.price * ln.qty)
    if ln.price_includes_tax:
        ln.total = base
        ln.tax = _q2(base * ln.rate / (1 + ln.rate))
        ln.amount = base - ln.tax
    else:
        ln.amount = base
        ln.tax = _q2(base * ln.rate)
        ln.total = ln.amount + ln.tax


def parse_red_details(details: Any, blue: InvoiceRecord) -> list[Line] | None:
    """saveInvoiceRedConfirm's ``detail`` → red Lines checked against ``blue``; None when there is none
    (a full reversal)."""
    lines: list[Line] | None = None
    if details:
        if not isinstance(details, list):
            raise NuonuoError("E4000", "detail 必须是数组")
        out = Outcome()
        lines = []
        for i, raw in enumerate(details):
            if not isinstance(raw, dict):
                raise NuonuoError("E4000", f"detail[{i}] 必须是对象")

            def f(key: str, i: int = i) -> str:
                return f"detail[{i}].{key}"

            ln = Line(index=i, name=text(raw.get("goodsName")), code=text(raw.get("goodsCode")))
            ln.qty = parse_decimal(out, raw.get("num"), f("num"), 8)
            ln.price = parse_decimal(out, raw.get("taxExcludedPrice"), f("taxExcludedPrice"), 8)
            ln.amount = parse_decimal(out, raw.get("taxExcludedAmount"), f("taxExcludedAmount"), 2, required=True)
            ln.tax = parse_decimal(out, raw.get("taxAmount"), f("taxAmount"), 2, required=True)
            ln.rate = parse_decimal(out, raw.get("taxRate"), f("taxRate"), 3, required=True)
            idx = text(raw.get("blueDetailIndex"))
            if not idx.isdigit():
                out.add(rules.FIELD, f("blueDetailIndex"), f"{f('blueDetailIndex')} 必须为蓝票明细行序号")
            else:
                ln.original_line_no = int(idx)
                if 1 <= ln.original_line_no <= len(blue.draft.lines):
                    bl = blue.draft.lines[ln.original_line_no - 1]
                    if ln.code != bl.code or ln.rate != bl.rate:
                        out.add(rules.FIELD, f("goodsCode"), f"{f('goodsCode')} 商品编码或税率与蓝票明细不符")
            if ln.amount is not None and ln.tax is not None:
                ln.total = ln.amount + ln.tax
                if ln.rate is not None and abs(ln.amount * ln.rate - ln.tax) > rules.LINE_TAX_TOLERANCE:
                    out.add(rules.AMOUNT, f("taxAmount"), f"{f('taxAmount')} 金额*税率-税额大于0.06", "E9131")
            lines.append(ln)
        if not out.ok:
            v = out.violations[0]
            raise NuonuoError(v.nuonuo_code, v.message)
    return lines
