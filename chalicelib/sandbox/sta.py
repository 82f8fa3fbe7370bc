"""The receiving side of the ``sta`` protocol (``docs/tax-protocol.md``), byte for byte.

``POST /access/v2/invoke/{nlbm}/{fwbm}``: the app id (``jrdwptbh``) selects the keys; the
``access_signature`` (HMAC-SM3 over the five-line canonical string), the ±300 s timestamp window and
the 600 s nonce replay cache are checked before the SM4 body is decrypted; the service runs; the reply
is ``{"httpStatusCode": 200, "body": Base64(SM4(JSON))}`` signed over the inner body string. Errors
use the codes of the protocol's table; an unknown app id gets HTTP 401 in plain JSON.

This module owns the routing: the envelope (keys, signature, timestamp, nonce, SM4), dispatch to one
handler per service, and the services themselves against the state. The field mapping (payload →
draft, record → reply fields, refusal → error code) is :mod:`chalicelib.sandbox.sta_mapping`, whose
names are re-exported here.
"""

# ruff: noqa: PLR0912 - rule checks are long flat lists of independent conditions

from __future__ import annotations

import re
import secrets
from typing import Any

from chalicelib.sandbox import crypto, rules
from chalicelib.sandbox.clock import china_time
from chalicelib.sandbox.common import Reply, dumps, json_reply, loads
from chalicelib.sandbox.config import StaApp
from chalicelib.sandbox.draft import Outcome, parse_decimal, text
from chalicelib.sandbox.records import AMOUNT, ISSUED, InvoiceRecord, Refusal, money
from chalicelib.sandbox.sta_mapping import (
    CODES,
    NAMES,
    StaError,
    field_error,
    form_fields,
    parse_invoice,
    parse_red_form_lines,
    raise_first,
    result_fields,
)
from chalicelib.sandbox.state import SandboxState

__all__ = [
    "CODES",
    "MAX_BATCH",
    "NAMES",
    "SERVICES",
    "StaError",
    "StaFrontEnd",
    "parse_invoice",
]

SERVICES = ("QDFPSC", "CXQDFPSCJG", "QDHZQRDSQ", "QDHZQRDQR", "CXHZQRD", "ZFFP", "CXSXED", "CXSSFLBM")
_NONCE_RE = re.compile(r"^[0-9a-f]{32}$")
MAX_BATCH = 50


class StaFrontEnd:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    # -- envelope ----------------------------------------------------------------------------------

    def app_for(self, headers: dict[str, str]) -> StaApp | None:
        return self.state.config.sta_apps.get(headers.get("jrdwptbh", ""))

    def handle(self, nlbm: str, fwbm: str, headers: dict[str, str], body: bytes) -> Reply:
        app = self.app_for(headers)
        if app is None:
            return json_reply(401, {"httpStatusCode": 401, "code": "E2001", "message": "未知的接入单位平台编号"})
        try:
            data = self._run(app, nlbm, fwbm, headers, body)
            response: dict[str, Any] = {"Response": {"Data": {"returncode": "00", "returnmsg": "成功", **data}}}
        except StaError as err:
            response = self.error_response(err)
        return self.encrypt_reply(app, fwbm, response)

    @staticmethod
    def error_response(err: StaError) -> dict[str, Any]:
        error: dict[str, Any] = {"code": err.code, "Message": err.message}
        inner: dict[str, Any] = {"Error": error}
        if err.data is not None:
            # E4001: the existing invoice, both beside the error (Response.Data) and inside it.
            error["Data"] = err.data
            inner["Data"] = err.data
        return {"Response": inner}

    def encrypt_reply(self, app: StaApp, fwbm: str, response: dict[str, Any]) -> Reply:
        inner = crypto.sm4_encrypt_b64(app.sm4_key, dumps(response).encode("utf-8"))
        ts = str(int(self.state.transport_now()))
        nonce = secrets.token_hex(16)
        sig = crypto.sta_signature(app.sign_key, app.app_id, fwbm, ts, nonce, inner.encode("ascii"))
        reply = json_reply(
            200,
            {"httpStatusCode": 200, "body": inner},
            [("X-Timestamp", ts), ("X-Nonce", nonce), ("access_signature", sig)],
        )
        reply.context = {"app": app, "fwbm": fwbm}
        return reply

    def busy_reply(self, fwbm: str, headers: dict[str, str]) -> Reply:
        app = self.app_for(headers)
        if app is None:
            return json_reply(429, {"httpStatusCode": 429, "code": "E3001", "message": "系统繁忙，请稍后重试"})
        return self.encrypt_reply(app, fwbm, self.error_response(StaError("E3001", "系统繁忙，请稍后重试")))

    def garble(self, reply: Reply, mode: str) -> Reply:
        """Corrupt a reply so the client's checks fail: signature, decryption or JSON."""
        app: StaApp | None = reply.context.get("app")
        fwbm: str = reply.context.get("fwbm", "")
        if mode == "json" or app is None:
            return Reply(reply.status, reply.body[: max(1, len(reply.body) // 2)], reply.headers)
        if mode == "signature":
            headers = [(k, "0" * 64 if k == "access_signature" else v) for k, v in reply.headers]
            return Reply(reply.status, reply.body, headers)
        # decrypt: a correctly signed body that does not decrypt (not a whole number of blocks)
        inner = "R0FSQkxFRA=="  # Base64("GARBLED"): 7 bytes
        ts = str(int(self.state.transport_now()))
        nonce = secrets.token_hex(16)
        sig = crypto.sta_signature(app.sign_key, app.app_id, fwbm, ts, nonce, inner.encode("ascii"))
        return json_reply(
            200,
            {"httpStatusCode": 200, "body": inner},
            [("X-Timestamp", ts), ("X-Nonce", nonce), ("access_signature", sig)],
        )

    def _run(self, app: StaApp, nlbm: str, fwbm: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        if headers.get("fwbm") and headers["fwbm"] != fwbm:
            raise field_error("fwbm", "与请求路径不一致")
        if headers.get("nlbm") and headers["nlbm"] != nlbm:
            raise field_error("nlbm", "与请求路径不一致")
        ts, nonce, sig = headers.get("x-timestamp", ""), headers.get("x-nonce", ""), headers.get("access_signature", "")
        if not sig:
            raise StaError("E2002", "签名验证失败: 缺少 access_signature")
        expected = crypto.sta_signature(app.sign_key, app.app_id, fwbm, ts, nonce, body)
        if not crypto.constant_time_equal(expected, sig):
            raise StaError("E2002", "签名验证失败")
        try:
            ts_value = int(ts)
        except ValueError:
            raise StaError("E2003", "时间戳格式不正确") from None
        if abs(self.state.transport_now() - ts_value) > self.state.config.timestamp_window_seconds:
            raise StaError("E2003", "时间戳超出允许范围")
        if not _NONCE_RE.match(nonce):
            raise StaError("E2003", "随机数格式不正确")
        if not self.state.remember_nonce(app.app_id, nonce):
            raise StaError("E2003", "随机数重复")
        try:
            plain = crypto.sm4_decrypt_b64(app.sm4_key, body.decode("ascii").strip())
            payload = loads(plain.decode("utf-8"))
        except (crypto.DecryptError, UnicodeDecodeError, ValueError):
            raise field_error("body", "无法解密或不是合法的JSON") from None
        if not isinstance(payload, dict):
            raise field_error("body", "必须是JSON对象")
        handler = getattr(self, f"_svc_{fwbm}", None)
        if fwbm not in SERVICES or handler is None:
            raise field_error("fwbm", f"不支持的服务 {fwbm}")
        try:
            result: dict[str, Any] = handler(app, payload)
            return result
        except Refusal as r:
            fld = NAMES.h(r.field) if r.field in NAMES.header else r.field
            code = CODES.get(r.kind, "E1001")
            msg = f"参数错误: {fld} {r.message}" if code == "E1001" else r.message
            raise StaError(code, msg) from None

    # -- helpers -------------------------------------------------------------------------------------

    def _authorise_seller(self, app: StaApp, tax_id: str) -> None:
        if app.sellers and tax_id not in app.sellers:
            raise StaError("E2001", f"权限不足: 无权为销方 {tax_id} 操作")
        if tax_id not in self.state.config.sellers:
            raise StaError("E2001", f"权限不足: 销方 {tax_id} 未登记")

    def _sellers(self, app: StaApp) -> tuple[str, ...]:
        return app.sellers or tuple(self.state.config.sellers)

    # -- services ------------------------------------------------------------------------------------

    def _svc_QDFPSC(self, app: StaApp, p: dict[str, Any]) -> dict[str, Any]:
        serial = text(p.get("fpqqlsh"))
        if not serial or len(serial) > 40:
            raise field_error("fpqqlsh", "不能为空且不超过40个字符")
        seller = text(p.get("xsfnsrsbh"))
        self._authorise_seller(app, seller)
        existing = self.state.find_invoice("sta", seller, serial)
        if existing is not None:
            data = {"fpqqlsh": existing.serial, "fphm": existing.number, "slh": existing.provider_ref}
            raise StaError("E4001", "发票已开具", data)
        out = Outcome()
        draft = parse_invoice(p, out)
        limit = self.state.seller(seller).single_invoice_limit
        rules.validate(
            draft, NAMES, self.state.table, checksum=self.state.config.uscc_policy, single_invoice_limit=limit, out=out
        )
        raise_first(out)
        blue_number = text(p.get("dylzfphm"))
        form_id = text(p.get("hzqrdbh"))
        if draft.red and not blue_number:
            raise field_error("dylzfphm", "红字发票必须填写对应蓝字发票号码")
        if draft.red and not form_id:
            raise field_error("hzqrdbh", "红字发票必须填写红字确认单编号")
        rec, _ = self.state.issue(
            protocol="sta",
            serial=serial,
            order_no=text(p.get("ddh")),
            draft=draft,
            raw=p,
            warnings=out.warnings,
            blue_number=blue_number,
            form_id=form_id,
        )
        return {"fpqqlsh": rec.serial, "slh": rec.provider_ref}

    def _svc_CXQDFPSCJG(self, app: StaApp, p: dict[str, Any]) -> dict[str, Any]:
        serials, orders = p.get("fpqqlsh") or [], p.get("ddh") or []
        for name, values in (("fpqqlsh", serials), ("ddh", orders)):
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise field_error(name, "必须是字符串数组")
            if len(values) > MAX_BATCH:
                raise field_error(name, f"最多{MAX_BATCH}个")
        if not serials and not orders:
            raise field_error("fpqqlsh", "fpqqlsh 和 ddh 不能同时为空")
        sellers = self._sellers(app)
        found: list[InvoiceRecord] = []
        for s in serials:
            for seller in sellers:
                rec = self.state.find_invoice("sta", seller, s)
                if rec is not None and rec not in found:
                    found.append(rec)
        for o in orders:
            for rec in self.state.find_by_order("sta", sellers, o):
                if rec not in found:
                    found.append(rec)
        if not found:
            raise StaError("E4004", "记录不存在")
        return {"jgs": [result_fields(r, self.state.base_url) for r in found]}

    def _svc_QDHZQRDSQ(self, app: StaApp, p: dict[str, Any]) -> dict[str, Any]:
        seller = text(p.get("xsfnsrsbh"))
        self._authorise_seller(app, seller)
        serial = text(p.get("sqlsh"))
        if not serial:
            raise field_error("sqlsh", "不能为空")
        lrfsf = text(p.get("lrfsf") or "0")
        if lrfsf not in ("0", "1"):
            raise field_error("lrfsf", "只能为0或1")
        reason = text(p.get("chyydm"))
        if reason not in ("01", "02", "03", "04"):
            raise field_error("chyydm", "冲红原因代码只能为01-04")
        blue_number = text(p.get("lzfphm"))
        if not re.fullmatch(r"\d{20}", blue_number):
            raise field_error("lzfphm", "必须为20位数电票号码")
        out = Outcome()
        amount = parse_decimal(out, p.get("hzcxje"), "hzcxje", 2, required=True)
        tax = parse_decimal(out, p.get("hzcxse"), "hzcxse", 2, required=True)
        lines = parse_red_form_lines(p, out)
        raise_first(out)
        blue = self.state.find_by_number(blue_number)
        if blue is None or blue.seller_tax_id != seller or blue.status != ISSUED:
            raise StaError("E4004", f"记录不存在: 蓝字发票 {blue_number}")
        if text(p.get("gmfmc")) and text(p.get("gmfmc")) != blue.draft.buyer_name:
            raise field_error("gmfmc", "与蓝字发票购方名称不符")
        lzkprq = text(p.get("lzkprq"))
        if lzkprq and blue.issued_at is not None and lzkprq[:10] != china_time(blue.issued_at)[:10]:
            raise field_error("lzkprq", "与蓝字发票开票日期不符")
        for ln in lines:
            line_no = ln.original_line_no
            if line_no is not None and 1 <= line_no <= len(blue.draft.lines):
                bl = blue.draft.lines[line_no - 1]
                if ln.code != bl.code:
                    raise field_error(f"mxs[{ln.index}].ssflbm", "与蓝字发票明细不符")
                if ln.rate != bl.rate:
                    raise field_error(f"mxs[{ln.index}].sl", "与蓝字发票明细税率不符")
        try:
            form, _ = self.state.apply_red_form(
                protocol="sta",
                serial=serial,
                seller_tax_id=seller,
                blue_number=blue_number,
                reason=reason,
                amount=amount,
                tax=tax,
                lines=lines,
                apply_source=lrfsf,
                buyer_tax_id=text(p.get("gmfnsrsbh")) if "gmfnsrsbh" in p else None,
            )
        except Refusal as r:
            if r.field == "hzcxje" and r.kind == AMOUNT:
                raise StaError("E1002", r.message) from None
            raise
        return form_fields(form)

    def _form(self, app: StaApp, p: dict[str, Any]) -> Any:
        form_id = text(p.get("hzqrdbh"))
        if not form_id:
            raise field_error("hzqrdbh", "不能为空")
        form = self.state.find_form(form_id=form_id)
        if form is None or form.seller_tax_id not in self._sellers(app):
            raise StaError("E4004", f"记录不存在: 红字确认单 {form_id}")
        return form

    def _svc_QDHZQRDQR(self, app: StaApp, p: dict[str, Any]) -> dict[str, Any]:
        form = self._form(app, p)
        action = text(p.get("qrlx"))
        if action not in ("Y", "N", "C"):
            raise field_error("qrlx", "只能为Y、N或C")
        return form_fields(self.state.act_on_form(form, action))

    def _svc_CXHZQRD(self, app: StaApp, p: dict[str, Any]) -> dict[str, Any]:
        return form_fields(self._form(app, p))

    def _svc_ZFFP(self, app: StaApp, p: dict[str, Any]) -> dict[str, Any]:
        number = text(p.get("fphm"))
        if not number:
            raise field_error("fphm", "不能为空")
        rec = self.state.find_by_number(number)
        if rec is None or rec.seller_tax_id not in self._sellers(app):
            raise StaError("E4004", f"记录不存在: 发票 {number}")
        self.state.void(number)
        return {}

    def _svc_CXSXED(self, app: StaApp, p: dict[str, Any]) -> dict[str, Any]:
        seller = text(p.get("xsfnsrsbh"))
        self._authorise_seller(app, seller)
        total, used, left = self.state.credit(seller)
        return {"zsxed": money(total), "ysyed": money(used), "syed": money(left)}

    def _svc_CXSSFLBM(self, app: StaApp, p: dict[str, Any]) -> dict[str, Any]:
        try:
            page, size = int(p.get("page", 1)), int(p.get("size", 500))
        except (TypeError, ValueError):
            raise field_error("page", "必须是整数") from None
        if page < 1 or not 1 <= size <= 1000:
            raise field_error("size", "page>=1, 1<=size<=1000")
        codes = self.state.table.all()
        chunk = codes[(page - 1) * size : page * size]
        return {
            "total": len(codes),
            "mxs": [
                {"ssflbm": c.code, "spmc": c.name, "sphfwjc": c.short_name, "sl": list(c.rate_texts)} for c in chunk
            ],
        }
