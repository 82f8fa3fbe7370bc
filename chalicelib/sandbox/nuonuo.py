"""The receiving side of Nuonuo's open platform, as its official documents describe it.

``POST /accessToken`` (form ``client_id``, ``client_secret``, ``grant_type=client_credentials``) hands
out tokens; ``POST /open/v1/services?senid=&nonce=&timestamp=&appkey=`` checks the ``accessToken``,
the ``X-Nuonuo-Sign`` (Base64 HMAC-SHA1 over the exact raw body bytes), the timestamp window and the
``userTax``, then dispatches on the ``method`` header (the last dotted part, so both the
``nuonuo.ElectronInvoice.*`` and ``nuonuo.OpeMplatform.*`` spellings work). Replies are the envelope
``{"code", "describe", "result"}`` with the official codes; codes the documents do not give are
marked as assumptions in ``docs/sandbox.md``.

This module owns the routing: tokens, authentication, the envelope, dispatch to one handler per
method, and the methods themselves against the state. The field mapping (payload → draft, record →
result fields, the code tables) is :mod:`chalicelib.sandbox.nuonuo_mapping`, whose names are
re-exported here.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from chalicelib.sandbox import crypto, rules
from chalicelib.sandbox.clock import CHINA_TZ
from chalicelib.sandbox.common import Reply, json_reply, loads
from chalicelib.sandbox.config import NuonuoApp
from chalicelib.sandbox.draft import Outcome, text
from chalicelib.sandbox.nuonuo_mapping import (
    INVOICE_LINES,
    NAMES,
    RED_REASONS,
    RED_REASONS_BACK,
    SPECIAL_LINES,
    STATUS_TEXT,
    NuonuoError,
    form_item_fields,
    parse_order,
    parse_red_details,
    result_fields,
    stock_rows,
)
from chalicelib.sandbox.records import ISSUED, InvoiceRecord, RedFormRecord, Refusal
from chalicelib.sandbox.red_forms import red_draft_from_form
from chalicelib.sandbox.state import SandboxState

__all__ = [
    "BUSY_CODE",
    "INVOICE_LINES",
    "MAX_BATCH",
    "NAMES",
    "RED_REASONS",
    "RED_REASONS_BACK",
    "SPECIAL_LINES",
    "STATUS_TEXT",
    "SUCCESS",
    "NuonuoError",
    "NuonuoFrontEnd",
    "envelope",
    "parse_order",
]

SUCCESS = "E0000"
BUSY_CODE = "E9999"  # assumption: no busy code is documented; HTTP 429 + this code + "系统繁忙，请稍后重试"
MAX_BATCH = 50


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
        if self.state.token_refusals.take():  # POST /admin/tokens {"refuse": n}: the quota refusal
            r = self.state.config.token_refusal
            return json_reply(r.status, {"error": r.error, "error_description": r.error_description})
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
            skew = abs(self.state.transport_now() - int(ts))  # transport freshness: wall time
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

    def _result(self, rec: InvoiceRecord, details: bool) -> dict[str, Any]:
        seller = self.state.config.sellers.get(rec.seller_tax_id)
        return result_fields(rec, details, base_url=self.state.base_url, seller=seller, table=self.state.table)

    def _form_item(self, form: RedFormRecord) -> dict[str, Any]:
        blue = self.state.find_by_number(form.blue_number)
        seller = self.state.config.sellers.get(form.seller_tax_id)
        red = self.state.find_invoice(form.protocol, form.seller_tax_id, form.red_serial) if form.red_serial else None
        return form_item_fields(form, blue=blue, seller=seller, red=red)

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
        return "调用成功", stock_rows(now)

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
        lines = parse_red_details(p.get("detail"), blue)
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
