"""Genuine, signed webhook deliveries for all eight platforms, built the way each platform builds them.

Every builder returns ``(body, headers)``: the exact bytes to POST to ``/webhooks/<platform>/<store_id>``
and the headers the platform sends with them (lower-case names). The event documents are those of
``infra/webhook_samples.py`` (what ``einvoice webhook sample`` prints). Signing follows the unit tests in
``tests/unit/webhooks/``: the platform's own client library where those tests use one (``standardwebhooks``,
``stripe``'s signer, python-alipay-sdk), the documented algorithm otherwise — ``infra/webhook_samples.py``'s
signers (Shopify, WooCommerce, 抖店, 有赞, WeChat Pay), which ``tests/app/test_platform_routes.py`` checks
against each platform's library.

- :func:`paid` / :func:`refunded` — a new delivery (fresh event id) each call; POSTing the same pair
  again is a re-delivery.
- :func:`tampered` — the same delivery with its body changed after signing.
- :func:`secret_values` — the JSON value the store's secret for the platform must hold (the RSA keys of
  WeChat Pay and Alipay are generated once per process).
- :func:`test_store` — a store dict (based on ``examples/stores/demo-shanghai.json``) that accepts all
  eight platforms, with secrets named ``einvoice/<store_id>/webhook/<platform>``.
- :func:`expected_reply` — what the platform expects back for an accepted delivery.

Amounts are yuan (``"88.00"``); every paid event carries one line (SKU ``LATTE-L`` of the demo
catalogue) or none, and no buyer, so it passes the store's invoice rules.
"""

from __future__ import annotations

import base64
import copy
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from infra import webhook_samples as ws

ROOT = Path(__file__).resolve().parents[2]
PLATFORMS: tuple[str, ...] = ws.PLATFORMS
#: platforms whose success answer is the gateway's own ``202 {"order_key", "status": "queued"}``
GATEWAY_REPLY = frozenset({"standard", "shopify", "stripe", "woocommerce"})

SKU = "LATTE-L"
CHINA = timezone(timedelta(hours=8))

# Fixed test secrets (none of them is real).
STANDARD_SECRET = "whsec_" + base64.b64encode(b"platform-events-standard-secret-01").decode()
STRIPE_SECRET = "whsec_test_platform_events_6f1d2c3b4a5968778695a4b3c2d1e0f9"
SHOPIFY_SECRET = "shpss_platform_events_0a1b2c3d4e5f60718293a4b5c6d7"
WOO_SECRET = "wc-platform-events-~Z9>r8Q!m2#kL"
DOUYIN_APP_KEY = "7000000000000000042"
DOUYIN_APP_SECRET = "5d3c2b1a-0f9e-4d8c-b7a6-958473625140"
YOUZAN_CLIENT_ID = "ab12cd34ef56ab78cd"
YOUZAN_CLIENT_SECRET = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"
WECHAT_APIV3_KEY = "Pq7Rs9Tu1Vw3Xy5Za7Bc9De1Fg3Hi5Jk"  # 32 characters
WECHAT_SERIAL = "6A1B2C3D4E5F60718293A4B5C6D7E8F901234567"
ALIPAY_APP_ID = "2021000199990042"


# --- keys (generated once per process) ------------------------------------------------------------
@dataclass(frozen=True)
class _RsaKeys:
    wechat_platform: Any  # WeChat Pay's platform private key: signs notifications
    wechat_private_pem: str  # the same, PEM (PKCS#8)
    wechat_cert_pem: str  # its certificate, as downloaded from WeChat Pay
    alipay: Any  # Alipay's private key: signs notifies
    alipay_public_b64: str  # the "支付宝公钥" as the console shows it
    alipay_sdk: Any  # python-alipay-sdk configured with Alipay's key pair (signs as Alipay does)


@cache
def _keys() -> _RsaKeys:
    from alipay import AliPay
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    wechat = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(wechat.public_key())
        .serial_number(int(WECHAT_SERIAL, 16))
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .sign(wechat, hashes.SHA256())
    )
    ali = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        ali.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).decode()
    private_pem = ali.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    sdk = AliPay(
        appid=ALIPAY_APP_ID,
        app_private_key_string=private_pem,
        alipay_public_key_string=public_pem,
        sign_type="RSA2",
    )
    return _RsaKeys(
        wechat_platform=wechat,
        wechat_private_pem=wechat.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        wechat_cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        alipay=ali,
        alipay_public_b64="".join(public_pem.strip().splitlines()[1:-1]),
        alipay_sdk=sdk,
    )


def secret_values(platform: str) -> dict[str, Any]:
    """The JSON value of the store's secret ``einvoice/<store_id>/webhook/<platform>``."""
    if platform == "standard":
        return {"secrets": [STANDARD_SECRET]}
    if platform == "stripe":
        return {"secrets": [STRIPE_SECRET]}
    if platform == "shopify":
        return {"secret": SHOPIFY_SECRET}
    if platform == "woocommerce":
        return {"secret": WOO_SECRET}
    if platform == "douyin":
        return {"app_key": DOUYIN_APP_KEY, "app_secret": DOUYIN_APP_SECRET}
    if platform == "youzan":
        return {"client_id": YOUZAN_CLIENT_ID, "client_secret": YOUZAN_CLIENT_SECRET}
    if platform == "wechatpay":
        return {"apiv3_key": WECHAT_APIV3_KEY, "platform_keys": {WECHAT_SERIAL: _keys().wechat_cert_pem}}
    if platform == "alipay":
        return {"app_id": ALIPAY_APP_ID, "alipay_public_key": _keys().alipay_public_b64}
    raise ValueError(f"unknown platform {platform!r}")


def secret_name(store_id: str, platform: str) -> str:
    return f"einvoice/{store_id}/webhook/{platform}"


def test_store(store_id: str) -> dict[str, Any]:
    """A store accepting all eight platforms, based on the demo-shanghai example (100 % pilot)."""
    doc: dict[str, Any] = json.loads((ROOT / "examples" / "stores" / "demo-shanghai.json").read_text("utf-8"))
    doc = copy.deepcopy(doc)
    doc["store_id"] = store_id
    doc["name"] = f"全平台测试店 {store_id}"[:100]
    doc["webhook_secrets"] = {p: secret_name(store_id, p) for p in PLATFORMS}
    doc["pilot_percentage"] = 100
    doc["active"] = True
    return doc


test_store.__test__ = False  # type: ignore[attr-defined]  # a builder: never collected by pytest


# --- what the platform expects back ---------------------------------------------------------------
@dataclass(frozen=True)
class ExpectedReply:
    status: int
    content_type: str  # the media type, without parameters
    body: Any  # parsed JSON (dict) or text


def expected_reply(platform: str, *, order_key: str, duplicate: bool = False) -> ExpectedReply:
    """The answer to an accepted delivery (``duplicate`` for a re-delivery)."""
    if platform == "alipay":
        return ExpectedReply(200, "text/plain", "success")
    if platform == "wechatpay":
        return ExpectedReply(200, "application/json", {"code": "SUCCESS", "message": "成功"})
    if platform in ("douyin", "youzan"):
        return ExpectedReply(200, "application/json", {"code": 0, "msg": "success"})
    outcome = "duplicate" if duplicate else "queued"
    return ExpectedReply(
        202 if not duplicate else 200,
        "application/json",
        {
            "order_key": order_key,
            "status": "queued",
            "outcome": outcome,
        },
    )


# --- helpers --------------------------------------------------------------------------------------
def _yuan(amount: str | Decimal) -> Decimal:
    return Decimal(str(amount)).quantize(Decimal("0.01"))


def _fen(amount: str | Decimal) -> int:
    return int(_yuan(amount) * 100)


def _now() -> datetime:
    return datetime.now(UTC)


def _sale(order_id: str, amount: Decimal) -> ws.Sale:
    return ws.Sale(order_id, amount, SKU, "拿铁咖啡（大杯）")


def _sent(request: ws.SignedRequest) -> tuple[bytes, dict[str, str]]:
    return request.body, request.headers


def _wechat_key() -> ws.SigningKeys:
    return ws.SigningKeys(_keys().wechat_private_pem, WECHAT_SERIAL)


# --- Standard Webhooks: signed with the ``standardwebhooks`` reference library --------------------
def _standard(doc: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    from standardwebhooks import Webhook

    body = json.dumps(doc, ensure_ascii=False).encode()
    msg_id = f"msg_{uuid.uuid4().hex}"
    at = _now().replace(microsecond=0)
    signature = Webhook(STANDARD_SECRET).sign(msg_id, at, body.decode())
    return body, {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


def _standard_paid(order_id: str, amount: Decimal) -> tuple[bytes, dict[str, str]]:
    return _standard(ws.standard_paid_doc(_sale(order_id, amount)))


def _standard_refunded(order_id: str, amount: Decimal, refund_id: str) -> tuple[bytes, dict[str, str]]:
    doc = {
        "type": "order.refunded",
        "timestamp": _now().isoformat(),
        "data": {
            "order_id": order_id,
            "amount": str(amount),
            "currency": "CNY",
            "refund_id": refund_id,
            "refund_amount": str(amount),
        },
    }
    return _standard(doc)


# --- Stripe: the ``stripe`` library's own signer ---------------------------------------------------
def _stripe(doc: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    import stripe

    body = json.dumps(doc, indent=2).encode()
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), STRIPE_SECRET, timestamp=int(time.time()))
    return body, {"content-type": "application/json; charset=utf-8", "stripe-signature": header}


def _stripe_paid(order_id: str, amount: Decimal) -> tuple[bytes, dict[str, str]]:
    return _stripe(ws.stripe_paid_doc(_sale(order_id, amount)))


def _stripe_refunded(order_id: str, amount: Decimal, refund_id: str) -> tuple[bytes, dict[str, str]]:
    charge_id = f"ch_{uuid.uuid4().hex[:16]}"
    charge = {
        "id": charge_id,
        "object": "charge",
        "amount": _fen(amount),
        "amount_captured": _fen(amount),
        "amount_refunded": _fen(amount),
        "currency": "cny",
        "metadata": {"order_id": order_id},
        "paid": True,
        "payment_intent": f"pi_{uuid.uuid4().hex[:16]}",
        "refunded": True,
        "refunds": {
            "object": "list",
            "data": [
                {
                    "id": refund_id,
                    "object": "refund",
                    "amount": _fen(amount),
                    "charge": charge_id,
                    "created": int(time.time()),
                    "currency": "cny",
                    "status": "succeeded",
                }
            ],
            "has_more": False,
        },
        "status": "succeeded",
    }
    return _stripe(ws.stripe_event("charge.refunded", charge, previous_attributes={"amount_refunded": 0}))


# --- Shopify, WooCommerce, 抖店, 有赞, WeChat Pay: the documented algorithms (infra/webhook_samples.py) ------
def _shopify_paid(order_id: str, amount: Decimal) -> tuple[bytes, dict[str, str]]:
    return _sent(ws.paid("shopify", _sale(order_id, amount), secret_values("shopify")))


def _shopify_refunded(order_id: str, amount: Decimal, refund_id: str) -> tuple[bytes, dict[str, str]]:
    refund = {
        "id": refund_id,
        "order_id": order_id,
        "created_at": _now().isoformat(),
        "processed_at": _now().isoformat(),
        "restock": False,
        "refund_line_items": [],
        "transactions": [
            {
                "id": 179259969,
                "order_id": order_id,
                "kind": "refund",
                "status": "success",
                "amount": str(amount),
                "currency": "CNY",
            }
        ],
        "order_adjustments": [],
    }
    return _sent(ws.sign_shopify(refund, "refunds/create", SHOPIFY_SECRET))


def _woocommerce_paid(order_id: str, amount: Decimal) -> tuple[bytes, dict[str, str]]:
    return _sent(ws.paid("woocommerce", _sale(order_id, amount), secret_values("woocommerce")))


def _woocommerce_refunded(order_id: str, amount: Decimal, refund_id: str) -> tuple[bytes, dict[str, str]]:
    order = ws.woocommerce_order_doc(_sale(order_id, amount), "refunded")
    order["refunds"] = [{"id": int(refund_id), "reason": "整单退款", "total": f"-{amount}"}]
    return _sent(ws.sign_woocommerce(order, WOO_SECRET))


def _douyin_paid(order_id: str, amount: Decimal) -> tuple[bytes, dict[str, str]]:
    return _sent(ws.paid("douyin", _sale(order_id, amount), secret_values("douyin")))


def _douyin_refunded(order_id: str, amount: Decimal, refund_id: str) -> tuple[bytes, dict[str, str]]:
    data = {
        "aftersale_id": refund_id,
        "aftersale_status": 12,
        "p_id": order_id,
        "s_id": order_id,
        "refund_amount": _fen(amount),
        "shop_id": ws.DOUYIN_SHOP_ID,
        "success_time": int(time.time()),
    }
    return _sent(ws.sign_douyin([ws.douyin_message("206", data)], DOUYIN_APP_KEY, DOUYIN_APP_SECRET))


def _youzan_paid(order_id: str, amount: Decimal) -> tuple[bytes, dict[str, str]]:
    return _sent(ws.paid("youzan", _sale(order_id, amount), secret_values("youzan")))


def _youzan_refunded(order_id: str, amount: Decimal, refund_id: str) -> tuple[bytes, dict[str, str]]:
    msg = {
        "tid": order_id,
        "refund_id": refund_id,
        "refund_type": "REFUND_ONLY",
        "refunded_fee": str(amount),
        "update_time": ws.china(_now()),
    }
    return _sent(
        ws.sign_youzan(
            "trade_refund_RefundSuccess",
            order_id,
            msg,
            client_id=YOUZAN_CLIENT_ID,
            client_secret=YOUZAN_CLIENT_SECRET,
        )
    )


def _wechatpay_paid(order_id: str, amount: Decimal) -> tuple[bytes, dict[str, str]]:
    return _sent(ws.paid("wechatpay", _sale(order_id, amount), secret_values("wechatpay"), _wechat_key()))


def _wechatpay_refunded(order_id: str, amount: Decimal, refund_id: str) -> tuple[bytes, dict[str, str]]:
    plain = {
        "mchid": "1900000100",
        "out_trade_no": order_id,
        "transaction_id": f"42000022{uuid.uuid4().int % 10**20:020d}",
        "out_refund_no": refund_id,
        "refund_id": f"503005{uuid.uuid4().int % 10**23:023d}",
        "refund_status": "SUCCESS",
        "success_time": _now().astimezone(CHINA).isoformat(timespec="seconds"),
        "amount": {
            "total": _fen(amount),
            "refund": _fen(amount),
            "payer_total": _fen(amount),
            "payer_refund": _fen(amount),
        },
    }
    return _sent(
        ws.sign_wechatpay("REFUND.SUCCESS", "退款成功", plain, "refund", apiv3_key=WECHAT_APIV3_KEY, key=_wechat_key())
    )


# --- Alipay: form POST signed RSA2 by python-alipay-sdk's signer ------------------------------------
def _alipay(params: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    content = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in ("sign", "sign_type") and v)
    sign = _keys().alipay_sdk._sign(content)  # the SDK's RSA2 signer (PKCS#1 v1.5, SHA-256, base64)
    body = urlencode({**params, "sign_type": "RSA2", "sign": sign}).encode("ascii")
    return body, {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}


def _alipay_paid(order_id: str, amount: Decimal) -> tuple[bytes, dict[str, str]]:
    return _alipay(ws.alipay_paid_doc(_sale(order_id, amount), ALIPAY_APP_ID))


def _alipay_refunded(order_id: str, amount: Decimal, refund_id: str) -> tuple[bytes, dict[str, str]]:
    params = ws.alipay_paid_doc(_sale(order_id, amount), ALIPAY_APP_ID)
    params.update({"refund_fee": str(amount), "out_biz_no": refund_id, "gmt_refund": ws.china(_now()) + ".318"})
    return _alipay(params)


# --- public builders -------------------------------------------------------------------------------
_PAID = {
    "standard": _standard_paid,
    "stripe": _stripe_paid,
    "shopify": _shopify_paid,
    "woocommerce": _woocommerce_paid,
    "douyin": _douyin_paid,
    "youzan": _youzan_paid,
    "wechatpay": _wechatpay_paid,
    "alipay": _alipay_paid,
}
_REFUNDED = {
    "standard": _standard_refunded,
    "stripe": _stripe_refunded,
    "shopify": _shopify_refunded,
    "woocommerce": _woocommerce_refunded,
    "douyin": _douyin_refunded,
    "youzan": _youzan_refunded,
    "wechatpay": _wechatpay_refunded,
    "alipay": _alipay_refunded,
}


def paid(platform: str, order_id: str, amount: str | Decimal = "88.00") -> tuple[bytes, dict[str, str]]:
    """A genuine "order paid" delivery of ``platform`` for ``order_id`` (a new event id every call)."""
    if platform not in _PAID:
        raise ValueError(f"unknown platform {platform!r}")
    return _PAID[platform](order_id, _yuan(amount))


def refunded(
    platform: str, order_id: str, amount: str | Decimal = "88.00", *, refund_id: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """A genuine full-refund delivery; ``refund_id`` (digits only: WooCommerce refund ids are integers)
    ends up in the order key ``order_key(<store>, platform, <order>, <refund_id>)``."""
    if platform not in _REFUNDED:
        raise ValueError(f"unknown platform {platform!r}")
    rid = refund_id or str(uuid.uuid4().int % 10**12)
    return _REFUNDED[platform](order_id, _yuan(amount), rid)


def tampered(platform: str, body: bytes, order_id: str) -> bytes:
    """The delivery's body changed after signing (another order id, or for WeChat Pay, whose order id is
    encrypted, another notification id); the headers stay those of the genuine delivery."""
    if platform == "wechatpay":
        changed = body.replace(b'"id":"EV-', b'"id":"EX-', 1)
    elif platform == "alipay":
        changed = body.replace(b"out_trade_no=" + quote(order_id).encode(), b"out_trade_no=FORGED-1", 1)
    else:
        changed = body.replace(order_id.encode(), b"FORGED" + order_id.encode(), 1)
    if changed == body:
        raise AssertionError(f"could not tamper with the {platform} body")
    return changed
