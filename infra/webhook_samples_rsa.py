"""The event documents (``*_paid_doc``) and signers (``sign_*``) of the platforms that sign with their own
RSA private key: WeChat Pay APIv3 (resource under AES-256-GCM) and Alipay (RSA2 form POST).
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from infra.webhook_samples_core import CHINA, Sale, SignedRequest, SigningKeys, _now, china, private_key


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
