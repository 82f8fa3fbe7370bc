"""Correctly signed deliveries of *any* content, for the fuzz tests (``tests/app/test_signed_fuzz.py``).

``tests/support/platform_events.py`` builds genuine events; these build what a hostile sender could sign
with the same keys: the raw JSON no ``json.dumps`` writes (:class:`Raw` tokens such as ``NaN`` or
``1e999``, :class:`DupObject` with a key twice), each platform's encoding around it (抖店's ``data``
string, 有赞's URL-encoded ``msg``, WeChat Pay's AES-GCM resource, Alipay's form), signed as the platform
signs (``infra/webhook_samples*.py``'s algorithms, the test keys of ``platform_events``), and the
hypothesis strategies of hostile values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import strategies as st

from infra import webhook_samples as ws
from tests.support import platform_events as pe


# --- raw JSON: what json.dumps cannot write (duplicated keys, NaN, number tokens of any size) ---------
@dataclass(frozen=True)
class Raw:
    """A JSON token written verbatim: ``NaN``, ``1e999``, ``-0``, a 40-digit integer."""

    text: str


@dataclass(frozen=True)
class DupObject:
    """A JSON object whose (key, value) pairs may repeat a key."""

    pairs: tuple[tuple[str, Any], ...]


def dumps(value: Any) -> str:
    """JSON text of ``value`` (escaped ASCII: a lone surrogate stays writable as ``\\udXXX``)."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, DupObject):
        return "{" + ",".join(f"{json.dumps(k)}:{dumps(v)}" for k, v in value.pairs) + "}"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value)


# --- signing raw content as each platform does ------------------------------------------------------
def _b64_hmac(key: bytes, data: bytes) -> str:
    return base64.b64encode(hmac.new(key, data, hashlib.sha256).digest()).decode()


def _md5(*parts: bytes) -> str:
    return hashlib.md5(b"".join(parts), usedforsecurity=False).hexdigest()


def sign_standard(content: str) -> tuple[bytes, dict[str, str]]:
    body = content.encode("utf-8", "surrogatepass")
    msg_id, ts = f"msg_{uuid.uuid4().hex}", str(int(time.time()))
    key = base64.b64decode(pe.STANDARD_SECRET.removeprefix("whsec_"))
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "webhook-signature": "v1," + _b64_hmac(key, f"{msg_id}.{ts}.".encode() + body),
    }
    return body, {"content-type": "application/json", **headers}


def sign_stripe(content: str) -> tuple[bytes, dict[str, str]]:
    body, ts = content.encode("utf-8", "surrogatepass"), int(time.time())
    signature = hmac.new(pe.STRIPE_SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return body, {"content-type": "application/json", "stripe-signature": f"t={ts},v1={signature}"}


def sign_shopify(content: str) -> tuple[bytes, dict[str, str]]:
    body = content.encode("utf-8", "surrogatepass")
    return body, {
        "content-type": "application/json",
        "x-shopify-hmac-sha256": _b64_hmac(pe.SHOPIFY_SECRET.encode(), body),
        "x-shopify-topic": "orders/paid",
        "x-shopify-webhook-id": str(uuid.uuid4()),
        "x-shopify-event-id": str(uuid.uuid4()),
    }


def sign_woocommerce(content: str) -> tuple[bytes, dict[str, str]]:
    body = content.encode("utf-8", "surrogatepass")
    return body, {
        "content-type": "application/json",
        "x-wc-webhook-signature": _b64_hmac(pe.WOO_SECRET.encode(), body),
        "x-wc-webhook-topic": "order.updated",
        "x-wc-webhook-resource": "order",
        "x-wc-webhook-event": "updated",
        "x-wc-webhook-id": "12",
        "x-wc-webhook-delivery-id": uuid.uuid4().hex,
    }


def sign_douyin(content: str) -> tuple[bytes, dict[str, str]]:
    """One 抖店 push of one "paid" message whose ``data`` (a JSON string, as 抖店 sends it) is ``content``."""
    message = {"tag": "101", "msg_id": f"{uuid.uuid4().int % 10**19}:101:{int(time.time())}", "data": content}
    body = json.dumps([message], separators=(",", ":")).encode()
    key, secret = pe.DOUYIN_APP_KEY, pe.DOUYIN_APP_SECRET
    return body, {
        "content-type": "application/json",
        "app-id": key,
        "event-sign": _md5(key.encode(), body, secret.encode()),
    }


def sign_youzan(content: str) -> tuple[bytes, dict[str, str]]:
    """An 有赞 "trade paid" push whose URL-encoded ``msg`` is ``content``."""
    cid, secret = pe.YOUZAN_CLIENT_ID, pe.YOUZAN_CLIENT_SECRET
    encoded = quote(content.encode("utf-8", "surrogatepass"), safe="")
    envelope = {
        "client_id": cid,
        "id": uuid.uuid4().hex[:12],
        "kdt_id": ws.YOUZAN_KDT_ID,
        "mode": 1,
        "msg_id": str(uuid.uuid4()),
        "status": "SUCCESS",
        "test": False,
        "type": "trade_TradePaid",
        "version": int(time.time()),
        "msg": encoded,
        "sign": _md5(cid.encode(), encoded.encode(), secret.encode()),
    }
    body = json.dumps(envelope, ensure_ascii=False).encode()
    headers = {
        "client-id": cid,
        "event-type": "trade_TradePaid",
        "event-sign": _md5(cid.encode(), body, secret.encode()),
    }
    return body, {"content-type": "application/json", **headers}


def sign_wechatpay(content: str) -> tuple[bytes, dict[str, str]]:
    """A WeChat Pay ``TRANSACTION.SUCCESS`` notification whose decrypted resource is ``content``."""
    nonce = os.urandom(6).hex()
    plain = content.encode("utf-8", "surrogatepass")
    ciphertext = AESGCM(pe.WECHAT_APIV3_KEY.encode()).encrypt(nonce.encode(), plain, b"transaction")
    envelope = {
        "id": f"EV-{uuid.uuid4().hex}",
        "create_time": "2026-01-01T10:00:00+08:00",
        "resource_type": "encrypt-resource",
        "event_type": "TRANSACTION.SUCCESS",
        "summary": "支付成功",
        "resource": {
            "original_type": "transaction",
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": base64.b64encode(ciphertext).decode(),
            "associated_data": "transaction",
            "nonce": nonce,
        },
    }
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
    ts, header_nonce = str(int(time.time())), uuid.uuid4().hex[:16]
    message = f"{ts}\n{header_nonce}\n".encode() + body + b"\n"
    signature = ws.private_key(pe._keys().wechat_private_pem).sign(message, padding.PKCS1v15(), hashes.SHA256())
    return body, {
        "content-type": "application/json",
        "wechatpay-timestamp": ts,
        "wechatpay-nonce": header_nonce,
        "wechatpay-serial": pe.WECHAT_SERIAL,
        "wechatpay-signature": base64.b64encode(signature).decode(),
        "wechatpay-signature-type": "WECHATPAY2-SHA256-RSA2048",
    }


def alipay_form(params: Any) -> tuple[bytes, dict[str, str]]:
    """An Alipay notify of ``params`` (a form is flat text: values are written as text, None dropped),
    signed RSA2 by python-alipay-sdk's signer over the sorted ``k=v`` string."""
    pairs = params.pairs if isinstance(params, DupObject) else tuple(params.items()) if isinstance(params, dict) else ()
    fields: dict[str, str] = {}
    for key, value in pairs:
        if value is None or key in ("sign", "sign_type"):
            continue
        text = value if isinstance(value, str) else value.text if isinstance(value, Raw) else dumps(value)
        fields[key] = text.encode("utf-8", "replace").decode("utf-8")  # a form carries no lone surrogate
    content = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if v)
    sign = pe._keys().alipay_sdk._sign(content)
    body = urlencode({**fields, "sign_type": "RSA2", "sign": sign}).encode("ascii")
    return body, {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}


def _sale(order_id: str) -> ws.Sale:
    return ws.Sale(order_id, Decimal("88.00"), pe.SKU, "拿铁咖啡（大杯）")


def _json_signed(
    signer: Callable[[str], tuple[bytes, dict[str, str]]],
) -> Callable[[Any], tuple[bytes, dict[str, str]]]:
    return lambda content: signer(dumps(content))


Signer = Callable[[Any], tuple[bytes, dict[str, str]]]
#: platform → (a genuine paid document for an order id, what signs a (mutated) document as the platform does)
PLATFORM_CONTENT: dict[str, tuple[Callable[[str], Any], Signer]] = {
    "standard": (lambda oid: ws.standard_paid_doc(_sale(oid)), _json_signed(sign_standard)),
    "stripe": (lambda oid: ws.stripe_paid_doc(_sale(oid)), _json_signed(sign_stripe)),
    "shopify": (lambda oid: ws.shopify_paid_doc(_sale(oid)), _json_signed(sign_shopify)),
    "woocommerce": (lambda oid: ws.woocommerce_order_doc(_sale(oid)), _json_signed(sign_woocommerce)),
    "douyin": (lambda oid: json.loads(ws.douyin_paid_doc(_sale(oid))[0]["data"]), _json_signed(sign_douyin)),
    "youzan": (lambda oid: ws.youzan_paid_doc(_sale(oid)), _json_signed(sign_youzan)),
    "wechatpay": (lambda oid: ws.wechatpay_paid_doc(_sale(oid)), _json_signed(sign_wechatpay)),
    "alipay": (lambda oid: ws.alipay_paid_doc(_sale(oid), pe.ALIPAY_APP_ID), alipay_form),
}


def sign(platform: str, content: Any) -> tuple[bytes, dict[str, str]]:
    return PLATFORM_CONTENT[platform][1](content)


# --- hostile values -----------------------------------------------------------------------------------
EDGE_TEXT = [
    "",
    " ",
    "\u0000",
    "\u202e反向",
    "\ufeff",
    "\u200b",
    "😀" * 3,
    "e\u0301",
    "𝟡𝟠.𝟘𝟘",
    "８８.００",
    "١٢٣",
    "\ud800",
    "\udfff",
    "单" * 90,
    "单" * 700,
    "x" * 5000,
    "null",
    "true",
    "<script>alert(1)</script>",
    "'; DROP TABLE orders; --",
    "{{7*7}}",
    "../../etc/passwd",
    "%00",
    "\r\n\t",
]
AMOUNT_TEXT = [
    "1e400",
    "1E-400",
    "-1",
    "-0.00",
    "-88.00",
    "NaN",
    "Infinity",
    "-Infinity",
    "0x58",
    "1_000",
    "88.001",
    "9" * 40,
    "0." + "0" * 60 + "1",
    " 88.00 ",
    "88,00",
    "+88",
    "0",
    "0.00",
    "99999999999999.99",
    "1e2",
]
NUMBER_TOKENS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e999",
    "1E+308",
    "-0",
    "-0.0",
    "4.9e-324",
    "123456789012345678901234567890123456789",
    "0.1e-99999",
    "1e-7",
    "8800e-2",
]
texts = st.one_of(
    st.sampled_from(EDGE_TEXT + AMOUNT_TEXT),
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=250, max_size=300),
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(NUMBER_TOKENS).map(Raw),
)
leaves = st.one_of(st.none(), st.booleans(), numbers, texts)


def _nest(depth: int) -> Any:
    value: Any = "88.00"
    for _ in range(depth):
        value = [value]
    return value


json_values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=10,
)
hostile = st.one_of(leaves, json_values, st.integers(min_value=60, max_value=70).map(_nest))
