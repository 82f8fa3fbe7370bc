"""The receiving side of the ``sta`` protocol (``docs/tax-protocol.md``), byte for byte.

``POST /access/v2/invoke/{nlbm}/{fwbm}``: the app id (``jrdwptbh``) selects the keys; the
``access_signature`` (HMAC-SM3 over the five-line canonical string), the ±300 s timestamp window and
the 600 s nonce replay cache are checked before the SM4 body is decrypted; the service runs; the reply
is ``{"httpStatusCode": 200, "body": Base64(SM4(JSON))}`` signed over the inner body string. Errors
use the codes of the protocol's table; an unknown app id gets HTTP 401 in plain JSON.
"""

# ruff: noqa: PLR0912, PLR0915 - rule checks are long flat lists of independent conditions

from __future__ import annotations

import re
import secrets
from typing import Any

from chalicelib.sandbox import crypto, rules
from chalicelib.sandbox.common import Reply, dumps, json_reply, loads
from chalicelib.sandbox.rules import RED, Draft, Line, Names, Outcome, parse_decimal, text
from chalicelib.sandbox.state import (
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
    Refusal,
    SandboxState,
    StaApp,
    china_time,
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
SERVICES = ("QDFPSC", "CXQDFPSCJG", "QDHZQRDSQ", "QDHZQRDQR", "CXHZQRD", "ZFFP", "CXSXED", "CXSSFLBM")
_NONCE_RE = re.compile(r"^[0-9a-f]{32}$")
MAX_BATCH = 50

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


def _field_error(fld: str, what: str) -> StaError:
    return StaError("E1001", f"参数错误: {fld} {what}")


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
        ts = str(int(self.state.clock.now()))
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
        ts = str(int(self.state.clock.now()))
        nonce = secrets.token_hex(16)
        sig = crypto.sta_signature(app.sign_key, app.app_id, fwbm, ts, nonce, inner.encode("ascii"))
        return json_reply(
            200,
            {"httpStatusCode": 200, "body": inner},
            [("X-Timestamp", ts), ("X-Nonce", nonce), ("access_signature", sig)],
        )

    def _run(self, app: StaApp, nlbm: str, fwbm: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        if headers.get("fwbm") and headers["fwbm"] != fwbm:
            raise _field_error("fwbm", "与请求路径不一致")
        if headers.get("nlbm") and headers["nlbm"] != nlbm:
            raise _field_error("nlbm", "与请求路径不一致")
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
        if abs(self.state.clock.now() - ts_value) > self.state.config.timestamp_window_seconds:
            raise StaError("E2003", "时间戳超出允许范围")
        if not _NONCE_RE.match(nonce):
            raise StaError("E2003", "随机数格式不正确")
        if not self.state.remember_nonce(app.app_id, nonce):
            raise StaError("E2003", "随机数重复")
        try:
            plain = crypto.sm4_decrypt_b64(app.sm4_key, body.decode("ascii").strip())
            payload = loads(plain.decode("utf-8"))
        except (crypto.DecryptError, UnicodeDecodeError, ValueError):
            raise _field_error("body", "无法解密或不是合法的JSON") from None
        if not isinstance(payload, dict):
            raise _field_error("body", "必须是JSON对象")
        handler = getattr(self, f"_svc_{fwbm}", None)
        if fwbm not in SERVICES or handler is None:
            raise _field_error("fwbm", f"不支持的服务 {fwbm}")
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

    def _urls(self, number: str) -> dict[str, str]:
        base = f"{self.state.base_url}/files/{number}"
        return {"pdfurl": f"{base}.pdf", "ofdurl": f"{base}.ofd", "xmlurl": f"{base}.xml"}

    @staticmethod
    def _raise_first(out: Outcome) -> None:
        if out.ok:
            return
        v = out.violations[0]
        code = CODES.get(v.category, "E1001")
        msg = f"参数错误: {v.message}" if code == "E1001" else v.message
        raise StaError(code, msg)

    def _result(self, rec: InvoiceRecord) -> dict[str, Any]:
        zt = {ISSUED: "02", FAILED: "03"}.get(rec.status, "01")
        urls = self._urls(rec.number) if rec.status == ISSUED else {"pdfurl": "", "ofdurl": "", "xmlurl": ""}
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

    # -- services ------------------------------------------------------------------------------------

    def _svc_QDFPSC(self, app: StaApp, p: dict[str, Any]) -> dict[str, Any]:
        serial = text(p.get("fpqqlsh"))
        if not serial or len(serial) > 40:
            raise _field_error("fpqqlsh", "不能为空且不超过40个字符")
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
        self._raise_first(out)
        blue_number = text(p.get("dylzfphm"))
        form_id = text(p.get("hzqrdbh"))
        if draft.red and not blue_number:
            raise _field_error("dylzfphm", "红字发票必须填写对应蓝字发票号码")
        if draft.red and not form_id:
            raise _field_error("hzqrdbh", "红字发票必须填写红字确认单编号")
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
                raise _field_error(name, "必须是字符串数组")
            if len(values) > MAX_BATCH:
                raise _field_error(name, f"最多{MAX_BATCH}个")
        if not serials and not orders:
            raise _field_error("fpqqlsh", "fpqqlsh 和 ddh 不能同时为空")
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
        return {"jgs": [self._result(r) for r in found]}

    def _svc_QDHZQRDSQ(self, app: StaApp, p: dict[str, Any]) -> dict[str, Any]:
        seller = text(p.get("xsfnsrsbh"))
        self._authorise_seller(app, seller)
        serial = text(p.get("sqlsh"))
        if not serial:
            raise _field_error("sqlsh", "不能为空")
        lrfsf = text(p.get("lrfsf") or "0")
        if lrfsf not in ("0", "1"):
            raise _field_error("lrfsf", "只能为0或1")
        reason = text(p.get("chyydm"))
        if reason not in ("01", "02", "03", "04"):
            raise _field_error("chyydm", "冲红原因代码只能为01-04")
        blue_number = text(p.get("lzfphm"))
        if not re.fullmatch(r"\d{20}", blue_number):
            raise _field_error("lzfphm", "必须为20位数电票号码")
        out = Outcome()
        amount = parse_decimal(out, p.get("hzcxje"), "hzcxje", 2, required=True)
        tax = parse_decimal(out, p.get("hzcxse"), "hzcxse", 2, required=True)
        raw_lines = p.get("mxs")
        if not isinstance(raw_lines, list) or not raw_lines:
            raise _field_error("mxs", "红冲明细不能为空")
        lines = []
        for i, raw in enumerate(raw_lines):
            if not isinstance(raw, dict):
                raise _field_error(f"mxs[{i}]", "必须是对象")
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
        self._raise_first(out)
        blue = self.state.find_by_number(blue_number)
        if blue is None or blue.seller_tax_id != seller or blue.status != ISSUED:
            raise StaError("E4004", f"记录不存在: 蓝字发票 {blue_number}")
        if text(p.get("gmfmc")) and text(p.get("gmfmc")) != blue.draft.buyer_name:
            raise _field_error("gmfmc", "与蓝字发票购方名称不符")
        lzkprq = text(p.get("lzkprq"))
        if lzkprq and blue.issued_at is not None and lzkprq[:10] != china_time(blue.issued_at)[:10]:
            raise _field_error("lzkprq", "与蓝字发票开票日期不符")
        for ln in lines:
            line_no = ln.original_line_no
            if line_no is not None and 1 <= line_no <= len(blue.draft.lines):
                bl = blue.draft.lines[line_no - 1]
                if ln.code != bl.code:
                    raise _field_error(f"mxs[{ln.index}].ssflbm", "与蓝字发票明细不符")
                if ln.rate != bl.rate:
                    raise _field_error(f"mxs[{ln.index}].sl", "与蓝字发票明细税率不符")
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
        return self._form_data(form)

    @staticmethod
    def _form_data(form: Any) -> dict[str, Any]:
        return {"hzqrdbh": form.form_id, "hzqrxxztdm": form.state, "lzfphm": form.blue_number}

    def _form(self, app: StaApp, p: dict[str, Any]) -> Any:
        form_id = text(p.get("hzqrdbh"))
        if not form_id:
            raise _field_error("hzqrdbh", "不能为空")
        form = self.state.find_form(form_id=form_id)
        if form is None or form.seller_tax_id not in self._sellers(app):
            raise StaError("E4004", f"记录不存在: 红字确认单 {form_id}")
        return form

    def _svc_QDHZQRDQR(self, app: StaApp, p: dict[str, Any]) -> dict[str, Any]:
        form = self._form(app, p)
        action = text(p.get("qrlx"))
        if action not in ("Y", "N", "C"):
            raise _field_error("qrlx", "只能为Y、N或C")
        return self._form_data(self.state.act_on_form(form, action))

    def _svc_CXHZQRD(self, app: StaApp, p: dict[str, Any]) -> dict[str, Any]:
        return self._form_data(self._form(app, p))

    def _svc_ZFFP(self, app: StaApp, p: dict[str, Any]) -> dict[str, Any]:
        number = text(p.get("fphm"))
        if not number:
            raise _field_error("fphm", "不能为空")
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
            raise _field_error("page", "必须是整数") from None
        if page < 1 or not 1 <= size <= 1000:
            raise _field_error("size", "page>=1, 1<=size<=1000")
        codes = self.state.table.all()
        chunk = codes[(page - 1) * size : page * size]
        return {
            "total": len(codes),
            "mxs": [
                {"ssflbm": c.code, "spmc": c.name, "sphfwjc": c.short_name, "sl": list(c.rate_texts)} for c in chunk
            ],
        }


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
