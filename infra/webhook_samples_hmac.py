"""The event documents (``*_paid_doc``) and signers (``sign_*``) of the platforms that sign with a shared
secret the store holds: Standard Webhooks, Stripe, Shopify, WooCommerce (HMAC-SHA256), 抖店 and 有赞 (MD5).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any
from urllib.parse import quote

from infra.webhook_samples_core import Sale, SignedRequest, _hmac_b64, _json, _md5_hex, _now, china


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
