"""Test-side clients for the tax sandbox, written independently of ``chalicelib.sandbox`` (gmssl,
hmac, hashlib and http.client only), plus payload builders. No tests live here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client as httpclient
import json
import secrets
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from gmssl import func, sm3, sm4

from chalicelib.sandbox import SandboxHandle, start_sandbox

SELLER = "339902999999789113"  # Nuonuo's sandbox seller id: fails the USCC checksum on purpose
BUYER_CO = "91330106MA2AYNWD8M"  # a valid unified social credit code
STA_APP = "TEST-STA-APP"
SM4_KEY_HEX = "0123456789abcdeffedcba9876543210"
SIGN_KEY = "test-sign-key"
NN_KEY = "TESTAPPKEY"
NN_SECRET = "TESTAPPSECRET"
T0 = 1767225600  # 2026-01-01T00:00:00Z
DELAY = 60
SOFTWARE = "3040201000000000000"
CATERING = "3070401000000000000"
GOODS13 = "1060512990000000000"


def config(**overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "sta": {"apps": {STA_APP: {"sm4_key": SM4_KEY_HEX, "sign_key": SIGN_KEY, "sellers": [SELLER]}}},
        "nuonuo": {"apps": {NN_KEY: {"app_secret": NN_SECRET, "user_tax": SELLER}}},
        "sellers": {
            SELLER: {
                "name": "沙箱测试销方",
                "province": "33",
                "credit_line": "10000.00",
                "single_invoice_limit": "5000.00",
            }
        },
        "issue_delay_seconds": DELAY,
        "clock": {"start": T0},
        "faults": {"seed": 7},
    }
    cfg.update(overrides)
    return cfg


@contextmanager
def running(cfg: dict[str, Any] | None = None) -> Iterator[SandboxHandle]:
    handle = start_sandbox(cfg or config())
    try:
        yield handle
    finally:
        handle.stop()


# --- money helpers ---------------------------------------------------------------------------------


def q2(d: Decimal) -> Decimal:
    return d.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def sta_line(
    amount: str, rate: str = "0.06", code: str = SOFTWARE, name: str = "*信息技术服务*软件维护", **over: Any
) -> dict[str, Any]:
    a, r = Decimal(amount), Decimal(rate)
    tax = q2(a * r)
    line = {
        "xh": 1,
        "spmc": name,
        "ssflbm": code,
        "ggxh": "",
        "dw": "次",
        "spsl": "1",
        "dj": f"{a:.2f}",
        "je": f"{a:.2f}",
        "sl": rate,
        "se": f"{tax:.2f}",
        "hsje": f"{a + tax:.2f}",
        "fphxz": "0",
        "yhzcbs": "0",
        "lslbs": "",
        "zzstsgl": "",
        "dylzfpmxxh": "",
    }
    line.update(over)
    return line


def sta_invoice(serial: str, lines: list[dict[str, Any]] | None = None, **over: Any) -> dict[str, Any]:
    lines = lines if lines is not None else [sta_line("100.00")]
    for i, ln in enumerate(lines, 1):
        ln.setdefault("xh", i)
    hjje = sum(Decimal(ln["je"]) for ln in lines)
    hjse = sum(Decimal(ln["se"]) for ln in lines)
    payload = {
        "fpqqlsh": serial,
        "lzfpbz": "0",
        "fppz": "02",
        "xsfnsrsbh": SELLER,
        "xsfmc": "沙箱测试销方",
        "xsfdz": "",
        "xsfdh": "",
        "xsfkhh": "",
        "xsfzh": "",
        "gmfnsrsbh": BUYER_CO,
        "gmfmc": "浙江诺诺网络科技有限公司",
        "gmfdz": "",
        "gmfdh": "",
        "gmfkhh": "",
        "gmfzh": "",
        "gmfzrrbs": "N",
        "hjje": f"{hjje:.2f}",
        "hjse": f"{hjse:.2f}",
        "jshj": f"{hjje + hjse:.2f}",
        "kpr": "张三",
        "fhr": "",
        "skr": "",
        "bz": "",
        "ddh": f"ORDER-{serial}",
        "dylzfphm": "",
        "hzqrdbh": "",
        "mxs": lines,
    }
    payload.update(over)
    return payload


def individual(payload: dict[str, Any]) -> dict[str, Any]:
    payload.update({"gmfnsrsbh": "", "gmfmc": "个人", "gmfzrrbs": "Y"})
    return payload


# --- raw HTTP ----------------------------------------------------------------------------------------


@dataclass
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body, parse_float=Decimal)


def http(url: str, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Raw:
    parts = urllib.parse.urlsplit(url)
    conn = httpclient.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return Raw(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def admin(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else b""
    raw = http(url, method, path, data, {"Content-Type": "application/json"})
    assert raw.status == 200, raw.body
    return raw.json()


# --- STA client (independent crypto) ----------------------------------------------------------------


def _sm3_hex(data: bytes) -> str:
    return sm3.sm3_hash(func.bytes_to_list(data))


def _hmac_sm3_hex(key: bytes, msg: bytes) -> str:
    if len(key) > 64:
        key = bytes.fromhex(_sm3_hex(key))
    key = key.ljust(64, b"\0")
    inner = bytes.fromhex(_sm3_hex(bytes(k ^ 0x36 for k in key) + msg))
    return _sm3_hex(bytes(k ^ 0x5C for k in key) + inner)


def sta_sign(fwbm: str, ts: str, nonce: str, body: bytes, *, key: str = SIGN_KEY, app: str = STA_APP) -> str:
    canonical = "\n".join([app, fwbm, ts, nonce, _sm3_hex(body)])
    return _hmac_sm3_hex(key.encode(), canonical.encode())


def sm4_encrypt(plain: bytes, key_hex: str = SM4_KEY_HEX) -> str:
    c = sm4.CryptSM4()
    c.set_key(bytes.fromhex(key_hex), sm4.SM4_ENCRYPT)
    return base64.b64encode(c.crypt_ecb(plain)).decode()  # gmssl pads PKCS#7 by default


def sm4_decrypt(text: str, key_hex: str = SM4_KEY_HEX) -> bytes:
    raw = base64.b64decode(text, validate=True)
    if not raw or len(raw) % 16:
        raise ValueError("not whole blocks")
    c = sm4.CryptSM4(padding_mode=99)
    c.set_key(bytes.fromhex(key_hex), sm4.SM4_DECRYPT)
    plain = c.crypt_ecb(raw)
    pad = plain[-1]
    if not 1 <= pad <= 16 or plain[-pad:] != bytes([pad]) * pad:
        raise ValueError("bad padding")
    return plain[:-pad]


@dataclass
class StaReply:
    raw: Raw
    response: dict[str, Any] | None = None
    signature_ok: bool = False

    @property
    def data(self) -> dict[str, Any]:
        assert self.response is not None, self.raw
        return self.response["Response"]["Data"]

    @property
    def error(self) -> dict[str, Any] | None:
        assert self.response is not None, self.raw
        return self.response["Response"].get("Error")

    @property
    def code(self) -> str:
        err = self.error
        return err["code"] if err else self.data["returncode"]


@dataclass
class StaClient:
    handle: SandboxHandle
    app: str = STA_APP
    sent: list[str] = field(default_factory=list)

    def now(self) -> int:
        return int(self.handle.state.clock.now())

    def post(
        self,
        fwbm: str,
        payload: dict[str, Any] | None = None,
        *,
        body: bytes | None = None,
        ts: int | None = None,
        nonce: str | None = None,
        sign_key: str = SIGN_KEY,
        signature: str | None = None,
    ) -> Raw:
        if body is None:
            text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
            body = sm4_encrypt(text.encode()).encode()
        ts_s = str(self.now() if ts is None else ts)
        nonce = nonce or secrets.token_hex(16)
        sig = signature or sta_sign(fwbm, ts_s, nonce, body, key=sign_key, app=self.app)
        headers = {
            "Content-Type": "text/plain; charset=utf-8",
            "fwbm": fwbm,
            "nlbm": "LQKP",
            "jrdwptbh": self.app,
            "sydwptbh": SELLER,
            "ylbm": "01",
            "sxcsbz": "1",
            "X-Timestamp": ts_s,
            "X-Nonce": nonce,
            "access_signature": sig,
        }
        return http(self.handle.url, "POST", f"/access/v2/invoke/LQKP/{fwbm}", body, headers)

    def call(self, fwbm: str, payload: dict[str, Any] | None = None, **kw: Any) -> StaReply:
        raw = self.post(fwbm, payload, **kw)
        return self.parse(fwbm, raw)

    def parse(self, fwbm: str, raw: Raw) -> StaReply:
        reply = StaReply(raw)
        if raw.status != 200:
            return reply
        outer = raw.json()
        inner = outer["body"]
        expected = sta_sign(fwbm, raw.headers["x-timestamp"], raw.headers["x-nonce"], inner.encode(), app=self.app)
        reply.signature_ok = hmac.compare_digest(expected, raw.headers["access_signature"])
        assert reply.signature_ok, "reply signature does not verify"
        reply.response = json.loads(sm4_decrypt(inner), parse_float=Decimal)
        return reply


# --- Nuonuo client ---------------------------------------------------------------------------------


def nn_sign(senid: str, nonce: str, ts: str, body: bytes, *, secret: str = NN_SECRET, key: str = NN_KEY) -> str:
    msg = f"a=services&l=v1&p=open&k={key}&i={senid}&n={nonce}&t={ts}&f=".encode() + body
    return base64.b64encode(hmac.new(secret.encode(), msg, hashlib.sha1).digest()).decode()


@dataclass
class NuonuoClient:
    handle: SandboxHandle
    token: str = ""

    def now(self) -> int:
        return int(self.handle.state.clock.now())

    def get_token(self, secret: str = NN_SECRET) -> Raw:
        form = urllib.parse.urlencode(
            {"client_id": NN_KEY, "client_secret": secret, "grant_type": "client_credentials"}
        ).encode()
        raw = http(self.handle.url, "POST", "/accessToken", form, {"Content-Type": "application/x-www-form-urlencoded"})
        if raw.status == 200:
            self.token = raw.json()["access_token"]
        return raw

    def call(
        self,
        method: str,
        content: dict[str, Any] | None = None,
        *,
        body: bytes | None = None,
        sign_body: bytes | None = None,
        ts: int | None = None,
        secret: str = NN_SECRET,
        token: str | None = None,
        user_tax: str = SELLER,
    ) -> Raw:
        if not self.token and token is None:
            assert self.get_token().status == 200
        if body is None:
            body = json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()
        senid = secrets.token_hex(16)
        nonce = str(10_000_000 + secrets.randbelow(90_000_000))
        ts_s = str(self.now() if ts is None else ts)
        sign = nn_sign(senid, nonce, ts_s, body if sign_body is None else sign_body, secret=secret)
        query = urllib.parse.urlencode({"senid": senid, "nonce": nonce, "timestamp": ts_s, "appkey": NN_KEY})
        headers = {
            "Content-Type": "application/json;charset=utf-8",
            "X-Nuonuo-Sign": sign,
            "accessToken": self.token if token is None else token,
            "userTax": user_tax,
            "method": method if method.startswith("nuonuo.") else f"nuonuo.ElectronInvoice.{method}",
        }
        return http(self.handle.url, "POST", f"/open/v1/services?{query}", body, headers)

    def ok(self, method: str, content: dict[str, Any]) -> Any:
        raw = self.call(method, content)
        env = raw.json()
        assert env["code"] == "E0000", env
        return env["result"]


def nn_line(amount_incl: str, rate: str = "0.06", code: str = SOFTWARE, name: str = "软件维护", **over: Any) -> dict:
    total, r = Decimal(amount_incl), Decimal(rate)
    tax = q2(total * r / (1 + r))
    line = {
        "goodsName": name,
        "goodsCode": code,
        "withTaxFlag": "1",
        "price": f"{total:.2f}",
        "num": "1",
        "unit": "次",
        "specType": "",
        "tax": f"{tax:.2f}",
        "taxRate": rate,
        "taxExcludedAmount": f"{total - tax:.2f}",
        "taxIncludedAmount": f"{total:.2f}",
        "invoiceLineProperty": "0",
    }
    line.update(over)
    return line


def nn_order(order_no: str, lines: list[dict[str, Any]] | None = None, **over: Any) -> dict[str, Any]:
    order = {
        "buyerName": "浙江诺诺网络科技有限公司",
        "buyerTaxNum": BUYER_CO,
        "salerTaxNum": SELLER,
        "salerTel": "0571-77777777",
        "salerAddress": "杭州市",
        "orderNo": order_no,
        "invoiceDate": "2026-01-01 08:00:00",
        "clerk": "张三",
        "pushMode": "-1",
        "invoiceType": "1",
        "invoiceLine": "pc",
        "invoiceDetail": lines if lines is not None else [nn_line("106.00")],
    }
    order.update(over)
    return {"order": order}
