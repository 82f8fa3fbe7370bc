"""The receiving side of Nuonuo's open platform, as its official documents describe it.

``POST /accessToken`` (form ``client_id``, ``client_secret``, ``grant_type=client_credentials``) hands
out tokens; ``POST /open/v1/services?senid=&nonce=&timestamp=&appkey=`` checks the ``accessToken``,
the ``X-Nuonuo-Sign`` (Base64 HMAC-SHA1 over the exact raw body bytes), the timestamp window and the
``userTax``, then dispatches on the ``method`` header (the last dotted part, so both the
``nuonuo.ElectronInvoice.*`` and ``nuonuo.OpeMplatform.*`` spellings work). Replies are the envelope
``{"code", "describe", "result"}`` with the official codes; codes the documents do not give are
marked as assumptions in ``docs/sandbox.md``.
"""

# ruff: noqa: PLR0912, PLR0915 - request checks are long flat lists of independent conditions

from __future__ import annotations

import re
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import parse_qs

from chalicelib.sandbox import crypto, rules
from chalicelib.sandbox.common import Reply, json_reply, loads
from chalicelib.sandbox.rules import Draft, Line, Names, Outcome, parse_decimal, text
from chalicelib.sandbox.state import (
    CHINA_TZ,
    FAILED,
    ISSUED,
    InvoiceRecord,
    NuonuoApp,
    RedFormRecord,
    Refusal,
    SandboxState,
    china_time,
    money,
    red_draft_from_form,
)

SUCCESS = "E0000"
BUSY_CODE = "E9999"  # assumption: no busy code is documented; HTTP 429 + this code + "系统繁忙，请稍后重试"
MAX_BATCH = 50
INVOICE_LINES = {"p", "c", "s", "e", "f", "r", "b", "j", "u", "bs", "pc", "es", "ec"}
SPECIAL_LINES = {"s", "b", "bs", "es"}
#: Nuonuo's redReason (1 销货退回, 2 开票有误, 3 服务中止, 4 销售折让) → the bureau's chyydm.
RED_REASONS = {"1": "02", "2": "01", "3": "03", "4": "04"}
RED_REASONS_BACK = {v: k for k, v in RED_REASONS.items()}
STATUS_TEXT = {"20": "开票中", "2": "开票完成（最终状态）", "22": "开票失败"}

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


def envelope(code: str, describe: str, result: Any = None, status: int = 200) -> Reply:
    return json_reply(status, {"code": code, "describe": describe, "result": result})


class NuonuoFrontEnd:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    # -- token ---------------------------------------------------------------------------------------

    def token(self, body: bytes) -> Reply:
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        app = self.state.config.nuonuo_apps.get(form.get("client_id", ""))
        if form.get("grant_type") != "client_credentials":
            return json_reply(400, {"error": "070301", "error_description": "grant_type 只支持 client_credentials"})
        if app is None or not crypto.constant_time_equal(app.app_secret, form.get("client_secret", "")):
            return json_reply(400, {"error": "070101", "error_description": "client_id 或 client_secret 不正确"})
        token, ttl = self.state.issue_token(app.app_key)
        return json_reply(200, {"access_token": token, "expires_in": ttl})

    # -- services ------------------------------------------------------------------------------------

    def busy_reply(self) -> Reply:
        return envelope(BUSY_CODE, "系统繁忙，请稍后重试", status=429)

    def handle(self, query: dict[str, str], headers: dict[str, str], body: bytes) -> Reply:
        try:
            app, user_tax = self._authenticate(query, headers, body)
            method = headers.get("method", "")
            name = method.rsplit(".", 1)[-1]
            handler = getattr(self, f"_m_{name}", None)
            if not method.startswith("nuonuo.") or handler is None:
                raise NuonuoError("E4000", f"不支持的方法 {method}")
            try:
                payload = loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise NuonuoError("E4000", "请求报文不是合法的JSON") from None
            if not isinstance(payload, dict):
                raise NuonuoError("E4000", "请求报文必须是JSON对象")
            try:
                describe, result = handler(app, user_tax, payload)
            except Refusal as r:
                raise NuonuoError(r.nuonuo_code, r.message) from None
            return envelope(SUCCESS, describe, result)
        except NuonuoError as err:
            return envelope(err.code, err.describe, err.result)

    def _authenticate(self, query: dict[str, str], headers: dict[str, str], body: bytes) -> tuple[NuonuoApp, str]:
        app = self.state.config.nuonuo_apps.get(query.get("appkey", ""))
        if app is None:
            raise NuonuoError("070101", "appkey 不存在")
        token = headers.get("accesstoken", "")
        if not token:
            raise NuonuoError("070304", "accessToken 不能为空")
        with self.state.lock:
            entry = self.state.tokens.get(token)
        if entry is None:
            raise NuonuoError("070305", "accessToken 无效")
        if entry[0] != app.app_key:
            raise NuonuoError("070307", "accessToken 与 appkey 不匹配")
        if self.state.clock.now() > entry[1]:
            raise NuonuoError("070306", "accessToken 已过期")
        senid, nonce, ts = query.get("senid", ""), query.get("nonce", ""), query.get("timestamp", "")
        sign = headers.get("x-nuonuo-sign", "")
        expected = crypto.nuonuo_signature(app.app_key, app.app_secret, senid, nonce, ts, body)
        if not sign or not crypto.constant_time_equal(expected, sign):
            raise NuonuoError("070601", "签名验证失败")
        if not senid or not re.fullmatch(r"[1-9]\d{0,7}", nonce):
            raise NuonuoError("E4000", "senid 不能为空, nonce 必须为8位以内正整数")
        try:
            skew = abs(self.state.clock.now() - int(ts))
        except ValueError:
            raise NuonuoError("070601", "timestamp 格式不正确") from None
        if skew > self.state.config.timestamp_window_seconds:
            raise NuonuoError("070601", "timestamp 超出允许范围")
        user_tax = headers.get("usertax", "")
        if not user_tax and len(app.user_taxes) == 1:
            user_tax = app.user_taxes[0]
        if not user_tax or (app.user_taxes and user_tax not in app.user_taxes):
            raise NuonuoError("E9338", f"该企业无权限调用API开票: {user_tax}")
        if user_tax not in self.state.config.sellers:
            raise NuonuoError("E9301", "企业信息备案错误,请联系诺诺网")
        return app, user_tax

    # -- helpers -------------------------------------------------------------------------------------

    def _urls(self, rec: InvoiceRecord) -> dict[str, str]:
        if rec.status != ISSUED:
            return {"pdfUrl": "", "ofdUrl": "", "xmlUrl": ""}
        base = f"{self.state.base_url}/files/{rec.number}"
        return {"pdfUrl": f"{base}.pdf", "ofdUrl": f"{base}.ofd", "xmlUrl": f"{base}.xml"}

    def _result(self, rec: InvoiceRecord, details: bool) -> dict[str, Any]:
        status = {ISSUED: "2", FAILED: "22"}.get(rec.status, "20")
        d = rec.draft
        seller = self.state.config.sellers.get(rec.seller_tax_id)
        out: dict[str, Any] = {
            "serialNo": rec.provider_ref,
            "orderNo": rec.order_no,
            "status": status,
            "statusMsg": STATUS_TEXT[status],
            "failCause": rec.failure,
            **self._urls(rec),
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
                    "itemCodeAbb": (self.state.table.get(ln.code).short_name if self.state.table.get(ln.code) else ""),  # type: ignore[union-attr]
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

    def _form_item(self, form: RedFormRecord) -> dict[str, Any]:
        blue = self.state.find_by_number(form.blue_number)
        seller = self.state.config.sellers.get(form.seller_tax_id)
        red = self.state.find_invoice(form.protocol, form.seller_tax_id, form.red_serial) if form.red_serial else None
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

    def _find_form(self, p: dict[str, Any], user_tax: str) -> RedFormRecord:
        form = self.state.find_form(
            form_id=text(p.get("billNo")), uuid_=text(p.get("billUuid")), serial=text(p.get("billId"))
        )
        if form is None or form.seller_tax_id != user_tax:
            raise NuonuoError("E9500", "红字确认单不存在")
        return form

    # -- methods -------------------------------------------------------------------------------------

    def _m_requestBillingNew(self, app: NuonuoApp, user_tax: str, p: dict[str, Any]) -> tuple[str, Any]:
        order = p.get("order")
        if not isinstance(order, dict):
            raise NuonuoError("E4000", "order 不能为空")
        order_no = text(order.get("orderNo"))
        if not order_no or len(order_no) > 20:
            raise NuonuoError("E4000", "orderNo 不能为空且不超过20位")
        seller = text(order.get("salerTaxNum"))
        if seller != user_tax:
            raise NuonuoError("E9302", "身份认证与当前企业税号不相符")
        existing = self.state.find_invoice("nuonuo", seller, order_no)
        if existing is not None:
            raise NuonuoError("E9106", "订单编号或流水号不能重复", {"invoiceSerialNum": existing.provider_ref})
        invoice_type = text(order.get("invoiceType"))
        if invoice_type not in ("1", "2"):
            raise NuonuoError("E9101", "开票类型错误(1:正票 2:红票)")
        out = Outcome()
        draft = parse_order(order, out)
        limit = self.state.seller(seller).single_invoice_limit
        rules.validate(
            draft, NAMES, self.state.table, checksum=self.state.config.uscc_policy, single_invoice_limit=limit, out=out
        )
        if not out.ok:
            v = out.violations[0]
            raise NuonuoError(v.nuonuo_code, v.message)
        blue_number = form_id = ""
        if draft.red:
            blue_number = text(order.get("invoiceNum"))
            form_id = text(order.get("billInfoNo"))
            if not re.fullmatch(r"\d{20}", blue_number):
                raise NuonuoError("E9102", "发票号码或发票代码不正确")
            if not form_id:
                raise NuonuoError("E4000", "billInfoNo 数电红票必须填写红字确认单编号")
        rec, _ = self.state.issue(
            protocol="nuonuo",
            serial=order_no,
            order_no=order_no,
            draft=draft,
            raw=p,
            warnings=out.warnings,
            blue_number=blue_number,
            form_id=form_id,
        )
        return "开票提交成功", {"invoiceSerialNum": rec.provider_ref}

    def _m_queryInvoiceResult(self, app: NuonuoApp, user_tax: str, p: dict[str, Any]) -> tuple[str, Any]:
        serials, orders = p.get("serialNos") or [], p.get("orderNos") or []
        for name, values in (("serialNos", serials), ("orderNos", orders)):
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise NuonuoError("E4000", f"{name} 必须是字符串数组")
            if len(values) > MAX_BATCH:
                raise NuonuoError("E4000", f"{name} 最多查询{MAX_BATCH}个")
        if not serials and not orders:
            raise NuonuoError("E9611", "发票流水号或订单号不能全为空")
        found: list[InvoiceRecord] = []
        if serials:  # 同时存在以流水号为准
            for s in serials:
                rec = self.state.find_by_ref(s)
                if rec is not None and rec.protocol == "nuonuo" and rec.seller_tax_id == user_tax:
                    found.append(rec)
        else:
            for o in orders:
                found.extend(self.state.find_by_order("nuonuo", (user_tax,), o))
        if not found:
            raise NuonuoError("E9500", "发票不存在")
        details = text(p.get("isOfferInvoiceDetail")) == "1"
        return "获取成功", [self._result(r, details) for r in found]

    def _m_invoiceCancellation(self, app: NuonuoApp, user_tax: str, p: dict[str, Any]) -> tuple[str, Any]:
        rec = self.state.find_by_ref(text(p.get("invoiceId"))) or self.state.find_by_number(text(p.get("invoiceNo")))
        if rec is None or rec.seller_tax_id != user_tax or rec.status != ISSUED:
            raise NuonuoError("E9500", "发票不存在")
        self.state.void(rec.number)
        return "作废提交成功", {"invoiceId": rec.provider_ref}  # not reached: 数电票 cannot be voided

    def _m_deliveryInvoice(self, app: NuonuoApp, user_tax: str, p: dict[str, Any]) -> tuple[str, Any]:
        phone, mail = text(p.get("phone")), text(p.get("mail"))
        if not phone and not mail:
            raise NuonuoError("E4000", "交付手机号和交付邮箱至少有一个不为空")
        rec = self.state.find_by_number(text(p.get("invoiceNum")))
        if rec is None or rec.seller_tax_id != text(p.get("taxnum")) or rec.seller_tax_id != user_tax:
            raise NuonuoError("E9999", "发票不存在不能重新交付")
        with self.state.lock:
            rec.delivered_to.extend(x for x in (phone, mail) if x)
        return "交付成功", {}

    def _m_reInvoice(self, app: NuonuoApp, user_tax: str, p: dict[str, Any]) -> tuple[str, Any]:
        serial, order_no = text(p.get("fpqqlsh")), text(p.get("orderno"))
        rec = self.state.find_by_ref(serial) if serial else None
        if rec is None and order_no and not serial:
            rec = self.state.find_invoice("nuonuo", user_tax, order_no)
        if rec is None or rec.seller_tax_id != user_tax:
            raise NuonuoError("E9500", "发票不存在")
        message = self.state.retry(rec)
        return message, message

    def _m_getInvoiceStock(self, app: NuonuoApp, user_tax: str, p: dict[str, Any]) -> tuple[str, Any]:
        now = datetime.fromtimestamp(self.state.clock.now(), CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")
        rows = [
            {
                "extensionNumber": 0,
                "machineCode": "",
                "terminalNumber": "",
                "invoiceLine": line,
                "remainNum": 99999,
                "typeCode": "",
                "invoiceNumStart": "",
                "invoiceNumEnd": "",
                "updateTime": now,
            }
            for line in ("pc", "bs")
        ]
        return "调用成功", rows

    def _m_saveInvoiceRedConfirm(self, app: NuonuoApp, user_tax: str, p: dict[str, Any]) -> tuple[str, Any]:
        if text(p.get("sellerTaxNo")) != user_tax:
            raise NuonuoError("E9302", "身份认证与当前企业税号不相符")
        if text(p.get("blueInvoiceLine")) not in INVOICE_LINES:
            raise NuonuoError("E4000", "blueInvoiceLine 不正确")
        source = text(p.get("applySource"))
        if source not in ("0", "1"):
            raise NuonuoError("E4000", "applySource 只能为0(销方)或1(购方)")
        if not text(p.get("buyerName")):
            raise NuonuoError("E4000", "buyerName 不能为空")
        reason = RED_REASONS.get(text(p.get("redReason")))
        if reason is None:
            raise NuonuoError("E4000", "redReason 只能为1-4")
        blue_number = text(p.get("blueElecInvoiceNumber")) or text(p.get("blueInvoiceNumber"))
        if not re.fullmatch(r"\d{20}", blue_number):
            raise NuonuoError("E9102", "发票号码或发票代码不正确")
        order_no = text(p.get("orderNo"))
        if len(order_no) > 20:
            raise NuonuoError("E4000", "orderNo 不超过20位")
        bill_id = text(p.get("billId"))
        if len(bill_id) > 32:
            raise NuonuoError("E4000", "billId 不超过32位")
        blue = self.state.find_by_number(blue_number)
        if blue is None or blue.seller_tax_id != user_tax or blue.status != ISSUED:
            raise NuonuoError("E9500", "蓝字发票不存在")
        if text(p.get("buyerName")) != blue.draft.buyer_name:
            raise NuonuoError("E9117", "红票购方名称与蓝票购方名称不符")
        details = p.get("detail")
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
        if order_no:
            existing = self.state.find_invoice("nuonuo", user_tax, order_no)
            if existing is not None:
                raise NuonuoError("E9106", "订单编号或流水号不能重复", {"invoiceSerialNum": existing.provider_ref})
        buyer_tax = text(p.get("buyerTaxNo"))
        form, _ = self.state.apply_red_form(
            protocol="nuonuo",
            serial=bill_id,
            seller_tax_id=user_tax,
            blue_number=blue_number,
            reason=reason,
            amount=None,
            tax=None,
            lines=lines,
            apply_source=source,
            buyer_tax_id=buyer_tax if buyer_tax else None,
            auto_order_no=order_no,
        )
        return "成功", form.serial

    def _m_queryInvoiceRedConfirm(self, app: NuonuoApp, user_tax: str, p: dict[str, Any]) -> tuple[str, Any]:
        try:
            page = int(p.get("pageNo") or 1)
            size = int(p.get("pageSize") or 10)
        except (TypeError, ValueError):
            raise NuonuoError("E4000", "pageNo/pageSize 必须是整数") from None
        if page < 1 or not 1 <= size <= 50:
            raise NuonuoError("E4000", "pageSize 最大为50")
        status = text(p.get("billStatus"))
        wanted = (text(p.get("billId")), text(p.get("billNo")), text(p.get("billUuid")))
        self.state.settle_all()
        with self.state.lock:
            forms = [
                f
                for f in self.state.forms.values()
                if f.seller_tax_id == user_tax
                and (not status or f.state == status)
                and (not wanted[0] or f.serial == wanted[0])
                and (not wanted[1] or f.form_id == wanted[1])
                and (not wanted[2] or f.uuid == wanted[2])
            ]
        chunk = forms[(page - 1) * size : page * size]
        return "查询成功", {"total": len(forms), "list": [self._form_item(f) for f in chunk]}

    def _m_confirm(self, app: NuonuoApp, user_tax: str, p: dict[str, Any]) -> tuple[str, Any]:
        form = self._find_form(p, user_tax)
        agreement = text(p.get("confirmAgreement"))
        if agreement not in ("0", "1"):
            raise NuonuoError("E4000", "confirmAgreement 只能为0(拒绝)或1(同意)")
        if text(p.get("identity")) not in ("0", "1"):
            raise NuonuoError("E4000", "identity 只能为0(销方)或1(购方)")
        self.state.act_on_form(form, "Y" if agreement == "1" else "N")
        return "成功", self._form_item(form)

    def _m_confirmInfoCancel(self, app: NuonuoApp, user_tax: str, p: dict[str, Any]) -> tuple[str, Any]:
        form = self._find_form(p, user_tax)
        self.state.act_on_form(form, "C")
        return "成功", self._form_item(form)

    def _m_fastInvoiceRed(self, app: NuonuoApp, user_tax: str, p: dict[str, Any]) -> tuple[str, Any]:
        order_no = text(p.get("orderNo"))
        if not order_no or len(order_no) > 20:
            raise NuonuoError("E4000", "orderNo 不能为空且不超过20位")
        tax_num = text(p.get("taxNum"))
        if tax_num and tax_num != user_tax:
            raise NuonuoError("E9302", "身份认证与当前企业税号不相符")
        existing = self.state.find_invoice("nuonuo", user_tax, order_no)
        if existing is not None:
            raise NuonuoError("E9106", "订单编号或流水号不能重复", {"invoiceSerialNum": existing.provider_ref})
        if not (text(p.get("billNo")) or text(p.get("billUuid")) or text(p.get("billId"))):
            raise NuonuoError("E4000", "billNo 数电红票必须填写红字确认单编号")
        form = self._find_form(p, user_tax)  # by billNo, billUuid or billId, as the other red-form methods
        blue_number = text(p.get("elecInvoiceNumber")) or text(p.get("invoiceNumber"))
        if blue_number and blue_number != form.blue_number:
            raise NuonuoError("E9102", "发票号码与红字确认单不对应")
        blue = self.state.find_by_number(form.blue_number)
        if blue is None:
            raise NuonuoError("E9500", "蓝字发票不存在")
        rec, _ = self.state.issue(
            protocol="nuonuo",
            serial=order_no,
            order_no=order_no,
            draft=red_draft_from_form(blue, form),
            raw=p,
            warnings=[],
            form_id=form.form_id,
        )
        return "开票提交成功", {"invoiceSerialNum": rec.provider_ref}


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
