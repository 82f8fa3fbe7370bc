"""Signed sample webhooks for all eight platforms, built the way each platform builds and signs them.

What ``einvoice webhook sample`` prints, and what the tests' event builders
(``tests/support/platform_events.py``) send: one place that knows each platform's event document and
its signature. Standard library and ``cryptography`` only (tests check every signature against the
platforms' own client libraries).

- :func:`paid` — a "paid" delivery for a :class:`Sale`, signed with the store's webhook secret (the JSON
  value its ``webhook_secrets.<platform>`` secret holds). WeChat Pay and Alipay sign with *their own*
  RSA private key, which a merchant never has: :class:`SigningKeys` carries one, as the local stack's
  test-only keys in ``examples/secrets.local.json`` do.
- the per-platform documents (``*_paid_doc``) and signers (``sign_*``), for other events (refunds).
- :func:`curl` — the request as a ready-to-paste ``curl`` command.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shlex
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from functools import cache
from typing import Any
from urllib.parse import quote, urlencode

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chalicelib import webhooks

PLATFORMS: tuple[str, ...] = webhooks.PLATFORMS  # every platform the gateway verifies
#: the platforms that sign with their own RSA private key (the store's secret holds the public half)
RSA_SIGNED = frozenset({"wechatpay", "alipay"})
CHINA = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class Sale:
    """What a sample event sells: one line (``sku`` of the store's catalogue, or none) for ``amount``."""

    order_id: str
    amount: Decimal
    sku: str | None = None
    name: str = "示例商品"
    buyer: dict[str, str] | None = None  # Standard Webhooks only

    @classmethod
    def of(cls, order_id: str, amount: str | Decimal, **kw: Any) -> Sale:
        return cls(order_id, Decimal(str(amount)).quantize(Decimal("0.01")), **kw)

    @property
    def fen(self) -> int:
        return int(self.amount * 100)


@dataclass(frozen=True)
class SignedRequest:
    """The exact bytes to POST to ``/webhooks/<platform>/<store_id>`` and their headers (lower case)."""

    platform: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SigningKeys:
    """A platform's own signing key (PEM, PKCS#8) and what names it: WeChat Pay's key id / serial."""

    private_pem: str
    key_id: str = ""


def curl(url: str, request: SignedRequest) -> str:
    """``request`` as a curl command (headers in a stable order, the body byte for byte; the answer
    ends with a newline, so several samples piped to bash print one answer a line)."""
    lines = [f"curl -sS -X POST {shlex.quote(url)}"]
    lines += [f"-H {shlex.quote(f'{name}: {value}')}" for name, value in request.headers.items()]
    lines.append(f"--data-binary {shlex.quote(request.body.decode('utf-8'))} -w '\\n'")
    return " \\\n  ".join(lines)


def parse_curl(command: str) -> tuple[str, SignedRequest]:
    """(url, request) of a command :func:`curl` printed: what a reader of the sample would send."""
    words = iter(shlex.split(command))
    url, headers, body = "", {}, b""
    for word in words:
        if word == "-H":
            name, _, value = next(words).partition(":")
            headers[name.strip().lower()] = value.strip()
        elif word == "--data-binary":
            body = next(words).encode()
        elif word.startswith("http"):
            url = word
    platform = url.rsplit("/webhooks/", 1)[-1].split("/")[0]
    return url, SignedRequest(platform, body, headers)


# --- helpers --------------------------------------------------------------------------------------
def _json(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


def _now() -> datetime:
    return datetime.now(UTC)


def china(at: datetime) -> str:
    return at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")


def _hmac_b64(secret: str | bytes, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()


def _md5_hex(*parts: bytes) -> str:
    return hashlib.md5(b"".join(parts), usedforsecurity=False).hexdigest()


@cache
def private_key(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def public_key_der(material: str) -> bytes:
    """The DER SubjectPublicKeyInfo of a PEM certificate, a PEM public key or a bare base64 public key."""
    from cryptography import x509

    text = material.strip()
    if "BEGIN CERTIFICATE" in text:
        key: Any = x509.load_pem_x509_certificate(text.encode("ascii")).public_key()
    elif "BEGIN" in text:
        key = serialization.load_pem_public_key(text.encode("ascii"))
    else:
        key = serialization.load_der_public_key(base64.b64decode("".join(text.split())))
    return bytes(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def pairs_with(private_pem: str, public_material: str) -> bool:
    """Whether ``public_material`` is the public half of ``private_pem``."""
    try:
        return public_key_der(public_material) == public_key_der(
            private_key(private_pem)
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
    except ValueError:
        return False


def first(secret: Mapping[str, Any], key: str = "secret") -> str:
    """The first value under ``key`` or ``key + 's'`` (the verifiers accept both), as the store's secret holds it."""
    plural = secret.get(key + "s")
    values = [str(v) for v in plural if v] if isinstance(plural, list) else []
    single = secret.get(key)
    if isinstance(single, str | int) and str(single):
        values.append(str(single))
    if not values:
        raise ValueError(f"the secret has no {key!r}")
    return values[0]


# --- Standard Webhooks: HMAC-SHA256(base64-decoded whsec_ secret, "{id}.{timestamp}.{body}") ----------
def standard_paid_doc(sale: Sale) -> dict[str, Any]:
    line = {"quantity": "1", "unit_price": str(sale.amount), "total": str(sale.amount), "name": sale.name}
    data: dict[str, Any] = {
        "order_id": sale.order_id,
        "amount": str(sale.amount),
        "currency": "CNY",
        "lines": [{"sku": sale.sku, **line} if sale.sku else line],
    }
    if sale.buyer:
        data["buyer"] = sale.buyer
    return {"type": "order.paid", "timestamp": _now().isoformat(), "data": data}


def sign_standard(doc: dict[str, Any], secret: str) -> SignedRequest:
    body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    msg_id = f"msg_{uuid.uuid4().hex}"
    ts = str(int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signature = _hmac_b64(key, f"{msg_id}.{ts}.".encode() + body)
    return SignedRequest(
        "standard",
        body,
        {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": ts,
            "webhook-signature": f"v1,{signature}",
        },
    )


# --- Stripe: "t=<ts>,v1=<HMAC-SHA256(secret, '<ts>.<body>')>" -----------------------------------------
def stripe_event(event_type: str, obj: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "livemode": False,
        "type": event_type,
        "data": {"object": obj, **extra},
    }


def stripe_paid_doc(sale: Sale) -> dict[str, Any]:
    session = {
        "id": f"cs_test_{uuid.uuid4().hex[:16]}",
        "object": "checkout.session",
        "amount_subtotal": sale.fen,
        "amount_total": sale.fen,
        "currency": "cny",
        "customer_details": None,
        "metadata": {"order_id": sale.order_id},
        "mode": "payment",
        "payment_intent": f"pi_{uuid.uuid4().hex[:16]}",
        "payment_status": "paid",
        "status": "complete",
    }
    return stripe_event("checkout.session.completed", session)


def sign_stripe(doc: dict[str, Any], secret: str) -> SignedRequest:
    body = json.dumps(doc, indent=2).encode()
    ts = int(time.time())
    signature = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return SignedRequest(
        "stripe",
        body,
        {"content-type": "application/json; charset=utf-8", "stripe-signature": f"t={ts},v1={signature}"},
    )


# --- Shopify: base64 HMAC-SHA256(app secret, raw body) ----------------------------------------------
def shopify_paid_doc(sale: Sale) -> dict[str, Any]:
    return {
        "id": sale.order_id,
        "currency": "CNY",
        "financial_status": "paid",
        "taxes_included": True,
        "total_price": str(sale.amount),
        "processed_at": _now().isoformat(),
        "note_attributes": [],
        "line_items": [
            {
                "id": 14400000000001,
                "sku": sale.sku,
                "title": sale.name,
                "quantity": 1,
                "price": str(sale.amount),
                "total_discount": "0.00",
                "discount_allocations": [],
                "tax_lines": [],
            }
        ],
        "shipping_lines": [],
    }


def sign_shopify(doc: dict[str, Any], topic: str, secret: str) -> SignedRequest:
    body = _json(doc)
    return SignedRequest(
        "shopify",
        body,
        {
            "content-type": "application/json",
            "x-shopify-hmac-sha256": _hmac_b64(secret, body),
            "x-shopify-topic": topic,
            "x-shopify-shop-domain": "platform-events.myshopify.com",
            "x-shopify-api-version": "2025-10",
            "x-shopify-webhook-id": str(uuid.uuid4()),
            "x-shopify-event-id": str(uuid.uuid4()),
            "x-shopify-triggered-at": _now().isoformat().replace("+00:00", "Z"),
        },
    )


# --- WooCommerce: base64 HMAC-SHA256(webhook secret, raw body) -------------------------------------
def woocommerce_order_doc(sale: Sale, status: str = "processing") -> dict[str, Any]:
    paid_at = _now().replace(tzinfo=None, microsecond=0).isoformat()
    return {
        "id": sale.order_id,
        "status": status,
        "currency": "CNY",
        "prices_include_tax": True,
        "total": str(sale.amount),
        "total_tax": "0.00",
        "date_paid": paid_at,
        "date_paid_gmt": paid_at,
        "date_modified_gmt": paid_at,
        "billing": {},
        "meta_data": [],
        "line_items": [
            {
                "id": 315,
                "name": sale.name,
                "quantity": 1,
                "subtotal": str(sale.amount),
                "subtotal_tax": "0.00",
                "total": str(sale.amount),
                "total_tax": "0.00",
                "sku": sale.sku or "",
            }
        ],
        "shipping_lines": [],
        "fee_lines": [],
        "refunds": [],
    }


def sign_woocommerce(doc: dict[str, Any], secret: str) -> SignedRequest:
    body = json.dumps(doc).encode()  # wp_json_encode escapes non-ASCII: sign exactly those bytes
    return SignedRequest(
        "woocommerce",
        body,
        {
            "content-type": "application/json",
            "x-wc-webhook-source": "https://shop.example.cn/",
            "x-wc-webhook-topic": "order.updated",
            "x-wc-webhook-resource": "order",
            "x-wc-webhook-event": "updated",
            "x-wc-webhook-signature": _hmac_b64(secret, body),
            "x-wc-webhook-id": "12",
            "x-wc-webhook-delivery-id": uuid.uuid4().hex,
        },
    )


# --- 抖店: event-sign = md5(app_key + body + app_secret) -------------------------------------------
DOUYIN_SHOP_ID = 77977


def douyin_message(tag: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"tag": tag, "msg_id": f"{uuid.uuid4().int % 10**19}:{tag}:{int(time.time())}", "data": json.dumps(data)}


def douyin_paid_doc(sale: Sale, shop_id: int | str = DOUYIN_SHOP_ID) -> list[dict[str, Any]]:
    data = {
        "p_id": sale.order_id,
        "s_ids": [sale.order_id],
        "shop_id": shop_id,
        "order_status": 2,
        "pay_type": 1,
        "pay_time": int(time.time()),
        "pay_amount": sale.fen,
        "biz": 2,
    }
    return [douyin_message("101", data)]


def sign_douyin(messages: list[dict[str, Any]], app_key: str, app_secret: str) -> SignedRequest:
    body = json.dumps(messages, separators=(",", ":")).encode()
    return SignedRequest(
        "douyin",
        body,
        {
            "content-type": "application/json",
            "app-id": app_key,
            "event-sign": _md5_hex(app_key.encode(), body, app_secret.encode()),
        },
    )


# --- 有赞: Event-Sign = md5(client_id + body + client_secret) ----------------------------------------
YOUZAN_KDT_ID = 56232


def youzan_paid_doc(sale: Sale) -> dict[str, Any]:
    return {
        "full_order_info": {
            "order_info": {"tid": sale.order_id, "status": "WAIT_SELLER_SEND_GOODS", "pay_time": china(_now())},
            "pay_info": {"payment": str(sale.amount), "total_fee": str(sale.amount), "post_fee": "0.00"},
            "orders": [
                {
                    "title": sale.name,
                    "num": 1,
                    "price": str(sale.amount),
                    "total_fee": str(sale.amount),
                    "payment": str(sale.amount),
                    "outer_sku_id": sale.sku or "",
                }
            ],
        }
    }


def sign_youzan(
    event_type: str,
    order_id: str,
    msg: dict[str, Any],
    *,
    client_id: str,
    client_secret: str,
    kdt_id: int | str = YOUZAN_KDT_ID,
) -> SignedRequest:
    msg_json = json.dumps(msg, ensure_ascii=False, separators=(",", ":"))
    encoded = quote(msg_json, safe="")
    envelope = {
        "client_id": client_id,
        "id": order_id,
        "kdt_id": kdt_id,
        "mode": 1,
        "msg_id": str(uuid.uuid4()),
        "status": "SUCCESS",
        "test": False,
        "type": event_type,
        "version": int(time.time()),
        "msg": encoded,
        "sign": _md5_hex(client_id.encode(), encoded.encode(), client_secret.encode()),
    }
    body = _json(envelope)
    return SignedRequest(
        "youzan",
        body,
        {
            "content-type": "application/json",
            "event-sign": _md5_hex(client_id.encode(), body, client_secret.encode()),
            "event-type": event_type,
            "client-id": client_id,
        },
    )


# --- WeChat Pay APIv3: RSA-SHA256 over "ts\nnonce\nbody\n", resource under AES-256-GCM ---------------
def wechatpay_paid_doc(sale: Sale) -> dict[str, Any]:
    """The decrypted ``resource`` of a ``TRANSACTION.SUCCESS`` notification."""
    return {
        "mchid": "1900000109",
        "appid": "wxdace645e0bc2cXXX",
        "out_trade_no": sale.order_id,
        "transaction_id": f"42000022{uuid.uuid4().int % 10**20:020d}",
        "trade_type": "JSAPI",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "success_time": _now().astimezone(CHINA).isoformat(timespec="seconds"),
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        "amount": {"total": sale.fen, "payer_total": sale.fen, "currency": "CNY", "payer_currency": "CNY"},
    }


def sign_wechatpay(
    event_type: str,
    summary: str,
    plain: dict[str, Any],
    original_type: str,
    *,
    apiv3_key: str,
    key: SigningKeys,
) -> SignedRequest:
    nonce = os.urandom(6).hex()  # WeChat uses 12 printable characters
    ciphertext = AESGCM(apiv3_key.encode()).encrypt(
        nonce.encode(), json.dumps(plain, ensure_ascii=False).encode(), original_type.encode()
    )
    envelope = {
        "id": f"EV-{uuid.uuid4().hex}",
        "create_time": _now().astimezone(CHINA).isoformat(timespec="seconds"),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": {
            "original_type": original_type,
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": base64.b64encode(ciphertext).decode(),
            "associated_data": original_type,
            "nonce": nonce,
        },
    }
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    header_nonce = uuid.uuid4().hex[:16]
    message = f"{timestamp}\n{header_nonce}\n".encode() + body + b"\n"
    signature = private_key(key.private_pem).sign(message, padding.PKCS1v15(), hashes.SHA256())
    return SignedRequest(
        "wechatpay",
        body,
        {
            "content-type": "application/json",
            "wechatpay-timestamp": timestamp,
            "wechatpay-nonce": header_nonce,
            "wechatpay-serial": key.key_id,
            "wechatpay-signature": base64.b64encode(signature).decode(),
            "wechatpay-signature-type": "WECHATPAY2-SHA256-RSA2048",
        },
    )


# --- Alipay: form POST, RSA2 (PKCS#1 v1.5, SHA-256) over the sorted k=v string -----------------------
def alipay_paid_doc(sale: Sale, app_id: str, status: str = "TRADE_SUCCESS") -> dict[str, str]:
    now = _now()
    return {
        "notify_time": china(now),
        "notify_type": "trade_status_sync",
        "notify_id": f"{now.strftime('%Y%m%d')}00222{uuid.uuid4().int % 10**24:024d}",
        "charset": "utf-8",
        "version": "1.0",
        "app_id": app_id,
        "auth_app_id": app_id,
        "trade_no": f"{now.strftime('%Y%m%d')}2200{uuid.uuid4().int % 10**16:016d}",
        "out_trade_no": sale.order_id,
        "trade_status": status,
        "total_amount": str(sale.amount),
        "receipt_amount": str(sale.amount),
        "buyer_pay_amount": str(sale.amount),
        "subject": sale.name,
        "gmt_create": china(now - timedelta(seconds=30)),
        "gmt_payment": china(now - timedelta(seconds=20)),
        "seller_id": "2088102177649450",
        "buyer_id": "2088102177846875",
    }


def sign_alipay(params: dict[str, str], key: SigningKeys) -> SignedRequest:
    content = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in ("sign", "sign_type") and v)
    signature = private_key(key.private_pem).sign(content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    sign = base64.b64encode(signature).decode()
    body = urlencode({**params, "sign_type": "RSA2", "sign": sign}).encode("ascii")
    return SignedRequest("alipay", body, {"content-type": "application/x-www-form-urlencoded; charset=utf-8"})


# --- one paid delivery, whatever the platform ------------------------------------------------------
def paid(platform: str, sale: Sale, secret: Mapping[str, Any], key: SigningKeys | None = None) -> SignedRequest:
    """A genuine "order paid" delivery of ``platform``, signed with the store's ``secret`` (its JSON
    value); ``key`` is the platform's own private key for WeChat Pay and Alipay (required there)."""
    if platform in RSA_SIGNED and key is None:
        raise ValueError(f"{platform} signs with its own private key: pass SigningKeys")
    if platform == "standard":
        return sign_standard(standard_paid_doc(sale), first(secret))
    if platform == "stripe":
        return sign_stripe(stripe_paid_doc(sale), first(secret))
    if platform == "shopify":
        return sign_shopify(shopify_paid_doc(sale), "orders/paid", _shopify_secret(secret))
    if platform == "woocommerce":
        return sign_woocommerce(woocommerce_order_doc(sale), first(secret))
    if platform == "douyin":
        shop = secret.get("shop_id") or next(iter(secret.get("shop_ids") or []), DOUYIN_SHOP_ID)
        return sign_douyin(douyin_paid_doc(sale, shop), str(secret["app_key"]), first(secret, "app_secret"))
    if platform == "youzan":
        kdt = secret.get("kdt_id") or next(iter(secret.get("kdt_ids") or []), YOUZAN_KDT_ID)
        return sign_youzan(
            "trade_TradePaid",
            sale.order_id,
            youzan_paid_doc(sale),
            client_id=str(secret["client_id"]),
            client_secret=first(secret, "client_secret"),
            kdt_id=kdt,
        )
    if platform == "wechatpay":
        assert key is not None
        plain = wechatpay_paid_doc(sale)
        return sign_wechatpay(
            "TRANSACTION.SUCCESS", "支付成功", plain, "transaction", apiv3_key=first(secret, "apiv3_key"), key=key
        )
    if platform == "alipay":
        assert key is not None
        return sign_alipay(alipay_paid_doc(sale, first(secret, "app_id")), key)
    raise ValueError(f"unknown platform {platform!r}")


def _shopify_secret(secret: Mapping[str, Any]) -> str:
    for name in ("secrets", "secret", "client_secret"):
        value = secret.get(name)
        if isinstance(value, list) and value:
            return str(value[0])
        if isinstance(value, str) and value:
            return value
    raise ValueError("the secret has no 'secret'")


def signing_key_for(platform: str, secret: Mapping[str, Any], private_pems: list[str]) -> SigningKeys | None:
    """Of ``private_pems``, the one whose public half the store's ``secret`` holds (with its key id)."""
    if platform == "wechatpay":
        keys = secret.get("platform_keys")
        for pem in private_pems:
            for key_id, material in keys.items() if isinstance(keys, Mapping) else ():
                if isinstance(material, str) and pairs_with(pem, material):
                    return SigningKeys(pem, str(key_id))
    elif platform == "alipay":
        publics = [p for name in ("alipay_public_key", "alipay_public_keys") for p in _as_list(secret.get(name))]
        for pem in private_pems:
            if any(pairs_with(pem, p) for p in publics):
                return SigningKeys(pem)
    return None


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else []
