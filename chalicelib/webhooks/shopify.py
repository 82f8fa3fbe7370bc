"""Shopify: ``X-Shopify-Hmac-Sha256`` = base64 HMAC-SHA256(app client secret, raw body); no timestamp.

The secret value is ``{"secrets": ["<new>", "<old>"]}`` / ``{"secret": …}`` (or shopifyapp's names
``client_secret`` and ``old_client_secret``); any of them passes, so a rotated app secret keeps
working while Shopify still signs with the old one. Headers are read with or without the ``X-``
prefix (Shopify sends ``shopify-…`` for some subscriptions). Topics (``X-Shopify-Topic``):
``orders/paid`` → paid (``total_price``, ``currency``; lines from ``line_items``: ``sku``,
``title``, ``quantity``, ``price``, discount = Σ ``discount_allocations[].amount`` or else
``total_discount``, plus the line's ``tax_lines`` when ``taxes_included`` is false; a ``Tip`` line
item without product is left out as a tip), and the amounts Shopify labels outside its lines:
``shipping`` = Σ ``shipping_lines`` (price − discount, + tax when excluded; without shipping lines
``total_shipping_price_set``), ``fees`` = ``total_tip_received`` (or the tip line items),
``order_discount`` = what ``total_discounts`` has beyond the discounts allocated to lines and
shipping lines; ``refunds/create`` → refunded (refund ``id``, ``order_id``, amount = Σ
``transactions[].amount`` of kind ``refund`` that did not fail; ``amount`` is the refund amount
since the payload has no order total; no lines). Other topics are genuine but ignored. Buyer invoice
data come from ``note_attributes`` (cart attributes) named ``invoice_title``/``发票抬头``,
``tax_id``/``税号``/``纳税人识别号``, ``invoice_type``/``抬头类型`` (company|individual|企业|个人),
``invoice_email``/``收票邮箱``, ``buyer_address``, ``buyer_phone``, ``buyer_bank``, ``buyer_account``
(case, spaces, ``-`` and a leading ``_``/``billing_`` ignored); with a tax id and no title,
``billing_address.company`` is the title. The order id is the numeric order ``id``. The
de-duplication key is ``X-Shopify-Event-Id`` (fallback ``X-Shopify-Webhook-Id``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from chalicelib.domain.errors import IgnoredEvent, MalformedPayload, SignatureInvalid
from chalicelib.domain.models import Buyer, BuyerType, EventKind, EventLine, PaymentEvent
from chalicelib.webhooks.base import (
    ContentIdentity,
    Outcome,
    Reply,
    accepted_reply,
    constant_time_in,
    load_json,
    plain_id,
    signed_content,
)
from chalicelib.webhooks.fields import amount as _amount
from chalicelib.webhooks.fields import iso_time as _time
from chalicelib.webhooks.fields import items as _list
from chalicelib.webhooks.fields import obj as _obj
from chalicelib.webhooks.fields import text as _str

NAME = "shopify"
SIGNS_TIMESTAMP = False

PAID_TOPIC = "orders/paid"
REFUND_TOPIC = "refunds/create"
TIP_TITLE = "tip"

_ID_RE = re.compile(r"^[\x21-\x7e]{1,256}$")
_TOPIC_RE = re.compile(r"^[\x21-\x7e]{1,100}$")
_CURRENCY_RE = re.compile(r"^[A-Za-z]{3}$")

#: note attribute / meta key (normalised) → Buyer field. Shared convention with WooCommerce.
BUYER_KEYS: dict[str, str] = {
    "invoice_title": "title",
    "发票抬头": "title",
    "tax_id": "tax_id",
    "税号": "tax_id",
    "纳税人识别号": "tax_id",
    "invoice_type": "type",
    "抬头类型": "type",
    "invoice_email": "email",
    "收票邮箱": "email",
    "buyer_address": "address",
    "buyer_phone": "phone",
    "buyer_bank": "bank",
    "buyer_account": "account",
}
_BUYER_TYPES = {
    "company": BuyerType.COMPANY,
    "enterprise": BuyerType.COMPANY,
    "企业": BuyerType.COMPANY,
    "单位": BuyerType.COMPANY,
    "individual": BuyerType.INDIVIDUAL,
    "personal": BuyerType.INDIVIDUAL,
    "个人": BuyerType.INDIVIDUAL,
}


# --- signature ---------------------------------------------------------------------------------
def _get(headers: Mapping[str, str], name: str) -> str | None:
    """``x-shopify-<name>`` or ``shopify-<name>``; empty counts as absent."""
    for key in (f"x-shopify-{name}", f"shopify-{name}"):
        value = headers.get(key)
        if value:
            return value
    return None


def _secrets(secrets: Mapping[str, Any]) -> list[bytes]:
    values: list[Any] = []
    plural = secrets.get("secrets")
    if isinstance(plural, list):
        values.extend(plural)
    values.extend(secrets.get(k) for k in ("secret", "client_secret", "old_client_secret"))
    keys = [v.strip().encode() for v in values if isinstance(v, str) and v.strip()]
    if not keys:
        raise SignatureInvalid("no secret configured", code="no_secret")
    return keys


def _parse_headers(headers: Mapping[str, str]) -> tuple[bytes, str, str]:
    """(hmac digest, topic, event id); anything missing or odd → SignatureInvalid."""
    try:
        received = _get(headers, "hmac-sha256")
        if received is None:
            raise SignatureInvalid("missing header X-Shopify-Hmac-Sha256", code="missing_header")
        try:
            digest = base64.b64decode(received.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise SignatureInvalid("header X-Shopify-Hmac-Sha256 is not base64", code="malformed_header") from None
        if len(digest) != hashlib.sha256().digest_size:
            raise SignatureInvalid("header X-Shopify-Hmac-Sha256 has the wrong length", code="malformed_header")
        topic = _get(headers, "topic")
        if topic is None:
            raise SignatureInvalid("missing header X-Shopify-Topic", code="missing_header")
        topic = topic.strip()
        if not _TOPIC_RE.match(topic):
            raise SignatureInvalid("header X-Shopify-Topic is malformed", code="malformed_header")
        event_id = _get(headers, "event-id") or _get(headers, "webhook-id")
        if event_id is None:
            raise SignatureInvalid("missing header X-Shopify-Event-Id", code="missing_header")
        event_id = event_id.strip()
        if not _ID_RE.match(event_id):
            raise SignatureInvalid("header X-Shopify-Event-Id is malformed", code="malformed_header")
        return digest, topic, event_id
    except SignatureInvalid:
        raise
    except Exception:  # any parsing surprise is a bad header, never a 500
        raise SignatureInvalid("malformed Shopify headers", code="malformed_header") from None


def verify(raw_body: bytes, headers: Mapping[str, str], secrets: Mapping[str, Any], now: datetime) -> PaymentEvent:
    """Verify a Shopify webhook (any configured app secret) and parse it into a ``PaymentEvent``."""
    digest, topic, event_id = _parse_headers(headers)
    body = bytes(raw_body)
    expected = [hmac.new(key, body, hashlib.sha256).digest() for key in _secrets(secrets)]
    if not constant_time_in(digest, expected):
        raise SignatureInvalid("no matching signature", code="bad_signature")
    if topic not in (PAID_TOPIC, REFUND_TOPIC):
        raise IgnoredEvent(f"topic {topic} needs no invoice")
    triggered = _time(_get(headers, "triggered-at"))
    payload: Any = None
    with signed_content(lambda: _identity(payload, topic), event_id=event_id):
        payload = load_json(body)
        if topic == PAID_TOPIC:
            return _paid(payload, event_id, triggered)
        return _refund(payload, event_id, triggered)


def _identity(payload: Any, topic: str) -> ContentIdentity:
    """What identifies the order of a signed body that cannot be used (best effort)."""
    body = payload if isinstance(payload, Mapping) else {}
    if topic == PAID_TOPIC:
        return ContentIdentity(kind=EventKind.PAID.value, order_id=plain_id(body.get("id")))
    return ContentIdentity(
        kind=EventKind.REFUNDED.value, order_id=plain_id(body.get("order_id")), refund_id=plain_id(body.get("id"))
    )


def reply(outcome: Outcome, *, order_key: str, status: str, detail: Mapping[str, Any] | None = None) -> Reply:
    """Shopify wants a 2xx within 5 s (202 when queued); anything else is retried 8 times over 4 hours."""
    return accepted_reply(outcome, order_key=order_key, status=status, detail=detail)


# --- payload -----------------------------------------------------------------------------------


def _dec(value: Any, path: str, *, required: bool = False) -> Decimal:
    """A non-negative money/quantity value (Shopify sends strings, sometimes numbers); absent → 0."""
    if value is None or value == "":
        if required:
            raise MalformedPayload(f"missing field {path}")
        return Decimal(0)
    return _amount(value, path)


def _currency(value: Any, path: str, default: str | None = None) -> str:
    currency = _str(value, path, required=default is None) or default or ""
    if not _CURRENCY_RE.match(currency):
        raise MalformedPayload(f"field {path} must be a 3-letter ISO code")
    return currency.upper()


def _sum_amounts(items: Any, path: str) -> Decimal:
    total = Decimal(0)
    for i, item in enumerate(_list(items, path, required=False)):
        total += _dec(_obj(item, f"{path}[{i}]").get("amount"), f"{path}[{i}].amount")
    return total


def _sum_tax(items: Any, path: str) -> Decimal:
    total = Decimal(0)
    for i, item in enumerate(_list(items, path, required=False)):
        total += _dec(_obj(item, f"{path}[{i}]").get("price"), f"{path}[{i}].price")
    return total


def normalise_key(key: str) -> str:
    """``" Billing-Tax ID"`` → ``tax_id``: case, spaces, dashes and ``_``/``billing_`` prefixes ignored."""
    norm = re.sub(r"[\s\-]+", "_", key.strip().lower()).lstrip("_")
    return norm.removeprefix("billing_")


def buyer_from_attributes(
    pairs: list[tuple[str, Any]], *, company: str | None, email: str | None, mobile: str | None, path: str
) -> Buyer | None:
    """The buyer from (name, value) pairs following the ``BUYER_KEYS`` convention."""
    fields: dict[str, str] = {}
    for name, value in pairs:
        target = BUYER_KEYS.get(normalise_key(name))
        if target is None or target in fields:
            continue
        text = _str(value, f"{path}.{name}") if not isinstance(value, (dict, list)) else None
        if text:
            fields[target] = text
    buyer_type: BuyerType | None = None
    if "type" in fields:
        buyer_type = _BUYER_TYPES.get(fields.pop("type").lower())
    if "title" not in fields and "tax_id" in fields and company:
        fields["title"] = company
    fields.setdefault("email", email or "")
    fields.setdefault("mobile", mobile or "")
    clean = {k: v for k, v in fields.items() if v}
    if not clean and buyer_type is None:
        return None
    return Buyer(type=buyer_type, **clean)


def _is_tip(line: Mapping[str, Any]) -> bool:
    """Shopify carries a tip as a line item titled ``Tip`` with no product (or SKU) behind it."""
    title = line.get("title") or line.get("name")
    return (
        isinstance(title, str)
        and title.strip().lower() == TIP_TITLE
        and not line.get("product_id")
        and not line.get("sku")
    )


def _lines(order: Mapping[str, Any], taxes_included: bool) -> tuple[tuple[EventLine, ...], Decimal, Decimal]:
    """The line items (tax-inclusive), the discounts allocated to them, and the tips that arrived as
    line items (left out of the lines: they are fees)."""
    lines: list[EventLine] = []
    discounts = tips = Decimal(0)
    for i, item in enumerate(_list(order.get("line_items"), "line_items")):
        path = f"line_items[{i}]"
        line = _obj(item, path)
        quantity = _dec(line.get("quantity"), f"{path}.quantity", required=True)
        price = _dec(line.get("price"), f"{path}.price", required=True)
        allocations = _list(line.get("discount_allocations"), f"{path}.discount_allocations", required=False)
        discount = (
            _sum_amounts(allocations, f"{path}.discount_allocations")
            if allocations
            else _dec(line.get("total_discount"), f"{path}.total_discount")
        )
        tax = Decimal(0) if taxes_included else _sum_tax(line.get("tax_lines"), f"{path}.tax_lines")
        if _is_tip(line):
            tips += price * quantity - discount + tax
            continue
        discounts += discount
        lines.append(
            EventLine(
                sku=_str(line.get("sku"), f"{path}.sku"),
                name=_str(line.get("title"), f"{path}.title") or _str(line.get("name"), f"{path}.name"),
                quantity=quantity,
                unit_price=price if taxes_included else None,
                total=price * quantity - discount + tax,
                discount=discount,
            )
        )
    return tuple(lines), discounts, tips


def _shipping(order: Mapping[str, Any], taxes_included: bool) -> tuple[Decimal | None, Decimal]:
    """What the buyer paid for shipping, tax-inclusive and after shipping discounts (Σ
    ``shipping_lines``; without them ``total_shipping_price_set``; None when the order says neither),
    and those shipping discounts."""
    if order.get("shipping_lines") is None:
        money = _obj(order.get("total_shipping_price_set"), "total_shipping_price_set", required=False)
        shop = _obj(money.get("shop_money"), "total_shipping_price_set.shop_money", required=False)
        if shop.get("amount") in (None, ""):
            return None, Decimal(0)
        return _dec(shop.get("amount"), "total_shipping_price_set.shop_money.amount"), Decimal(0)
    paid = discounts = Decimal(0)
    for i, item in enumerate(_list(order.get("shipping_lines"), "shipping_lines")):
        path = f"shipping_lines[{i}]"
        ship = _obj(item, path)
        price = _dec(ship.get("price"), f"{path}.price", required=True)
        discount = _sum_amounts(ship.get("discount_allocations"), f"{path}.discount_allocations")
        if not discount and ship.get("discounted_price") not in (None, ""):
            discount = max(price - _dec(ship.get("discounted_price"), f"{path}.discounted_price"), Decimal(0))
        tax = Decimal(0) if taxes_included else _sum_tax(ship.get("tax_lines"), f"{path}.tax_lines")
        paid += price - discount + tax
        discounts += discount
    return paid, discounts


def _order_discount(order: Mapping[str, Any], allocated: Decimal) -> Decimal | None:
    """The part of ``total_discounts`` Shopify did not allocate to a line or a shipping line (its
    ``discount_applications`` normally all are): an order-level discount to spread over the lines."""
    rest = _dec(order.get("total_discounts"), "total_discounts") - allocated
    return rest if rest > 0 else None


def _tips(order: Mapping[str, Any], tip_lines: Decimal) -> Decimal | None:
    """``total_tip_received``, else what the tip line items came to; None without a tip."""
    received = _dec(order.get("total_tip_received"), "total_tip_received")
    tips = received or tip_lines
    return tips if tips > 0 else None


def _paid(payload: Any, event_id: str, triggered: datetime | None) -> PaymentEvent:
    order = _obj(payload, "body")
    order_id = _str(order.get("id"), "id", required=True)
    amount = _dec(order.get("total_price"), "total_price", required=True)
    currency = _currency(order.get("currency"), "currency")
    taxes_included = order.get("taxes_included") is not False
    pairs: list[tuple[str, Any]] = []
    for i, attr in enumerate(_list(order.get("note_attributes"), "note_attributes", required=False)):
        entry = _obj(attr, f"note_attributes[{i}]")
        name = entry.get("name")
        if isinstance(name, str):
            pairs.append((name, entry.get("value")))
    billing = _obj(order.get("billing_address"), "billing_address", required=False)
    customer = _obj(order.get("customer"), "customer", required=False)
    buyer = buyer_from_attributes(
        pairs,
        company=_str(billing.get("company"), "billing_address.company"),
        email=_str(order.get("email"), "email") or _str(order.get("contact_email"), "contact_email"),
        mobile=_str(order.get("phone"), "phone")
        or _str(billing.get("phone"), "billing_address.phone")
        or _str(customer.get("phone"), "customer.phone"),
        path="note_attributes",
    )
    lines, line_discounts, tip_lines = _lines(order, taxes_included)
    shipping, shipping_discounts = _shipping(order, taxes_included)
    return PaymentEvent(
        platform=NAME,
        event_id=event_id,
        kind=EventKind.PAID,
        order_id=str(order_id),
        amount=amount,
        currency=currency,
        lines=lines,
        buyer=buyer,
        shipping=shipping,
        order_discount=_order_discount(order, line_discounts + shipping_discounts),
        fees=_tips(order, tip_lines),
        occurred_at=triggered or _time(order.get("processed_at")) or _time(order.get("created_at")),
        event_type=PAID_TOPIC,
    )


def _refund(payload: Any, event_id: str, triggered: datetime | None) -> PaymentEvent:
    refund = _obj(payload, "body")
    refund_id = _str(refund.get("id"), "id", required=True)
    order_id = _str(refund.get("order_id"), "order_id", required=True)
    total = Decimal(0)
    currency: str | None = None
    for i, item in enumerate(_list(refund.get("transactions"), "transactions")):
        path = f"transactions[{i}]"
        txn = _obj(item, path)
        if txn.get("kind") != "refund" or txn.get("status") in ("failure", "error", "pending"):
            continue
        total += _dec(txn.get("amount"), f"{path}.amount", required=True)
        if currency is None and txn.get("currency"):
            currency = _currency(txn.get("currency"), f"{path}.currency")
    if total <= 0:
        raise IgnoredEvent("refund without a successful refund transaction (restock or adjustment only)")
    return PaymentEvent(
        platform=NAME,
        event_id=event_id,
        kind=EventKind.REFUNDED,
        order_id=str(order_id),
        amount=total,
        currency=currency or "CNY",
        refund_id=str(refund_id),
        refund_amount=total,
        occurred_at=triggered or _time(refund.get("processed_at")) or _time(refund.get("created_at")),
        event_type=REFUND_TOPIC,
    )
