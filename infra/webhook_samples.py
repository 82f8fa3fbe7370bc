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

The pieces live along their seams — this module keeps :func:`paid` and :func:`signing_key_for` and
re-exports the rest, so ``from infra import webhook_samples`` stays the one place to import from:

- :mod:`infra.webhook_samples_core` — :class:`Sale`, :class:`SignedRequest`, :class:`SigningKeys`, helpers;
- :mod:`infra.webhook_samples_hmac` — Standard Webhooks, Stripe, Shopify, WooCommerce, 抖店, 有赞;
- :mod:`infra.webhook_samples_rsa` — WeChat Pay, Alipay;
- :mod:`infra.webhook_samples_curl` — :func:`curl` and :func:`parse_curl`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra.webhook_samples_core import (
    CHINA,
    PLATFORMS,
    RSA_SIGNED,
    Sale,
    SignedRequest,
    SigningKeys,
    china,
    first,
    pairs_with,
    private_key,
    public_key_der,
)
from infra.webhook_samples_curl import curl, parse_curl
from infra.webhook_samples_hmac import (
    DOUYIN_SHOP_ID,
    YOUZAN_KDT_ID,
    douyin_message,
    douyin_paid_doc,
    shopify_paid_doc,
    sign_douyin,
    sign_shopify,
    sign_standard,
    sign_stripe,
    sign_woocommerce,
    sign_youzan,
    standard_paid_doc,
    stripe_event,
    stripe_paid_doc,
    woocommerce_order_doc,
    youzan_paid_doc,
)
from infra.webhook_samples_rsa import alipay_paid_doc, sign_alipay, sign_wechatpay, wechatpay_paid_doc

__all__ = [
    "CHINA",
    "DOUYIN_SHOP_ID",
    "PLATFORMS",
    "RSA_SIGNED",
    "YOUZAN_KDT_ID",
    "Sale",
    "SignedRequest",
    "SigningKeys",
    "alipay_paid_doc",
    "china",
    "curl",
    "douyin_message",
    "douyin_paid_doc",
    "first",
    "paid",
    "pairs_with",
    "parse_curl",
    "private_key",
    "public_key_der",
    "shopify_paid_doc",
    "sign_alipay",
    "sign_douyin",
    "sign_shopify",
    "sign_standard",
    "sign_stripe",
    "sign_wechatpay",
    "sign_woocommerce",
    "sign_youzan",
    "signing_key_for",
    "standard_paid_doc",
    "stripe_event",
    "stripe_paid_doc",
    "wechatpay_paid_doc",
    "woocommerce_order_doc",
    "youzan_paid_doc",
]


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
