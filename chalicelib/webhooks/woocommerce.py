"""WooCommerce: ``X-WC-Webhook-Signature`` = base64 HMAC-SHA256(webhook secret, raw body); no timestamp.

The secret value is ``{"secrets": [...]}`` or ``{"secret": …}`` (each webhook has its own secret; list
several while re-creating webhooks). WooCommerce has no "paid" topic: ``order.updated`` /
``order.created`` with status ``processing`` or ``completed`` and ``date_paid`` set → paid; status
``refunded`` → a full refund (refund id = the newest ``refunds[].id``, or ``full`` when the payload
lists none, so that re-deliveries and later edits of the order map to the same refund; refund amount =
the order ``total``); other statuses and topics are genuine but ignored, and so is the ping WooCommerce
sends when a webhook is saved (form body ``webhook_id=<n>``, usually unsigned): it gets a 200, never a
401. Amounts: WooCommerce line ``total`` is after discounts and *excluding* tax whatever the shop's
tax display setting, so a line's tax-inclusive total is ``total + total_tax`` (and its discount
``subtotal + subtotal_tax`` minus that: coupons, ``discount_total``, are allocated to the lines
that way); the amounts outside the lines are labelled, never lines: ``shipping`` = Σ
``shipping_lines`` ``total + total_tax`` (else ``shipping_total + shipping_tax``), ``fees`` = the
positive ``fee_lines``, ``order_discount`` = the negative ones. Payloads must be "WP REST API Integration v3". The
order id is the order ``id`` (not the display ``number``). Buyer invoice data come from order
``meta_data`` (checkout-field plugins store ``_billing_<field>``) with the keys of the Shopify
convention (:data:`chalicelib.webhooks.shopify.BUYER_KEYS`: ``invoice_title``/``发票抬头``,
``tax_id``/``税号`` …); with a tax id and no title, ``billing.company`` is the title. The
de-duplication key is ``X-WC-Webhook-Delivery-ID`` (new for every delivery: order-level idempotency
downstream is what stops repeated ``order.updated`` deliveries from issuing twice).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from chalicelib.domain.errors import IgnoredEvent, MalformedPayload, SignatureInvalid
from chalicelib.domain.models import EventKind, EventLine, PaymentEvent
from chalicelib.domain.money import PRICE_PLACES
from chalicelib.webhooks.base import (
    ContentIdentity,
    Outcome,
    Reply,
    accepted_reply,
    constant_time_in,
    header,
    load_json,
    plain_id,
    secret_list,
    signed_content,
)
from chalicelib.webhooks.fields import amount as _amount
from chalicelib.webhooks.fields import iso_time as _time
from chalicelib.webhooks.fields import items as _list
from chalicelib.webhooks.fields import obj as _obj
from chalicelib.webhooks.fields import text as _str
from chalicelib.webhooks.shopify import buyer_from_attributes

NAME = "woocommerce"
SIGNS_TIMESTAMP = False

ORDER_TOPICS = frozenset({"order.updated", "order.created"})
PAID_STATUSES = frozenset({"processing", "completed"})
REFUNDED_STATUS = "refunded"
FULL_REFUND_ID = "full"

_PING_RE = re.compile(rb"^\s*webhook_id=[0-9]{1,20}\s*$")
_ID_RE = re.compile(r"^[\x21-\x7e]{1,256}$")
_TOPIC_RE = re.compile(r"^[\x21-\x7e]{1,200}$")
_CURRENCY_RE = re.compile(r"^[A-Za-z]{3}$")


# --- signature ---------------------------------------------------------------------------------
def _parse_headers(headers: Mapping[str, str]) -> tuple[bytes, str, str]:
    """(hmac digest, topic, delivery id); anything missing or odd → SignatureInvalid."""
    try:
        received = header(headers, "x-wc-webhook-signature").strip()
        try:
            digest = base64.b64decode(received, validate=True)
        except (binascii.Error, ValueError):
            raise SignatureInvalid("header X-WC-Webhook-Signature is not base64", code="malformed_header") from None
        if len(digest) != hashlib.sha256().digest_size:
            raise SignatureInvalid("header X-WC-Webhook-Signature has the wrong length", code="malformed_header")
        topic = header(headers, "x-wc-webhook-topic").strip()
        if not _TOPIC_RE.match(topic):
            raise SignatureInvalid("header X-WC-Webhook-Topic is malformed", code="malformed_header")
        delivery_id = header(headers, "x-wc-webhook-delivery-id").strip()
        if not _ID_RE.match(delivery_id):
            raise SignatureInvalid("header X-WC-Webhook-Delivery-ID is malformed", code="malformed_header")
        return digest, topic, delivery_id
    except SignatureInvalid:
        raise
    except Exception:  # any parsing surprise is a bad header, never a 500
        raise SignatureInvalid("malformed WooCommerce headers", code="malformed_header") from None


def is_ping(raw_body: bytes) -> bool:
    """The test ping WooCommerce sends when a webhook is saved: ``webhook_id=<n>``, form-encoded."""
    return len(raw_body) <= 64 and _PING_RE.match(bytes(raw_body)) is not None


def verify(raw_body: bytes, headers: Mapping[str, str], secrets: Mapping[str, Any], now: datetime) -> PaymentEvent:
    """Verify a WooCommerce delivery and parse it into a ``PaymentEvent`` (a ping → IgnoredEvent)."""
    if is_ping(raw_body):
        raise IgnoredEvent("webhook ping", code="ping")  # carries nothing to invoice, signed or not
    digest, topic, delivery_id = _parse_headers(headers)
    body = bytes(raw_body)
    keys = [s.strip().encode() for s in secret_list(secrets) if s.strip()]
    if not keys:
        raise SignatureInvalid("no usable secret configured", code="no_secret")
    expected = [hmac.new(key, body, hashlib.sha256).digest() for key in keys]
    if not constant_time_in(digest, expected):
        raise SignatureInvalid("no matching signature", code="bad_signature")
    if topic not in ORDER_TOPICS:
        raise IgnoredEvent(f"topic {topic} needs no invoice")
    payload: Any = None
    with signed_content(lambda: _identity(payload), event_id=delivery_id):
        payload = load_json(body)
        return _parse_order(payload, topic, delivery_id)


def _identity(payload: Any) -> ContentIdentity:
    """What identifies the order of a signed body that cannot be used (best effort)."""
    order = payload if isinstance(payload, Mapping) else {}
    status = order.get("status")
    if status in PAID_STATUSES:
        return ContentIdentity(kind=EventKind.PAID.value, order_id=plain_id(order.get("id")))
    if status == REFUNDED_STATUS:
        return ContentIdentity(
            kind=EventKind.REFUNDED.value, order_id=plain_id(order.get("id")), refund_id=_refund_id(order)
        )
    return ContentIdentity()


def reply(outcome: Outcome, *, order_key: str, status: str, detail: Mapping[str, Any] | None = None) -> Reply:
    """Any 2xx is success (202 when queued); WooCommerce disables a webhook after 5 non-2xx in a row."""
    return accepted_reply(outcome, order_key=order_key, status=status, detail=detail)


# --- payload -----------------------------------------------------------------------------------


def _dec(value: Any, path: str, *, required: bool = False, signed: bool = False) -> Decimal:
    """A money/quantity value; absent → 0 unless required; negative only when ``signed``."""
    if value is None or value == "":
        if required:
            raise MalformedPayload(f"missing field {path}")
        return Decimal(0)
    return _amount(value, path, signed=signed)


def _exact_unit_price(gross: Decimal, quantity: Decimal) -> Decimal | None:
    """gross / quantity when it is exact to 8 decimals; otherwise left to the invoice builder."""
    if quantity <= 0:
        return None
    try:
        rounded = (gross / quantity).quantize(PRICE_PLACES)
    except InvalidOperation:  # beyond the context's precision: not a price anyone sends
        return None
    return rounded if rounded * quantity == gross else None


def _with_tax(entry: Mapping[str, Any], path: str, *, signed: bool = False) -> Decimal:
    """An entry's tax-inclusive value: ``total + total_tax`` (WooCommerce's ``total`` excludes tax)."""
    total = _dec(entry.get("total"), f"{path}.total", required=True, signed=signed)
    return total + _dec(entry.get("total_tax"), f"{path}.total_tax", signed=signed)


def _lines(order: Mapping[str, Any]) -> tuple[EventLine, ...]:
    lines: list[EventLine] = []
    for i, item in enumerate(_list(order.get("line_items"), "line_items")):
        path = f"line_items[{i}]"
        line = _obj(item, path)
        quantity = _dec(line.get("quantity"), f"{path}.quantity", required=True)
        total = _with_tax(line, path)
        gross = _dec(line.get("subtotal"), f"{path}.subtotal") + _dec(line.get("subtotal_tax"), f"{path}.subtotal_tax")
        gross = max(gross, total)
        lines.append(
            EventLine(
                sku=_str(line.get("sku"), f"{path}.sku"),
                name=_str(line.get("name"), f"{path}.name"),
                quantity=quantity,
                unit_price=_exact_unit_price(gross, quantity),
                total=total,
                discount=gross - total,
            )
        )
    return tuple(lines)


def _shipping(order: Mapping[str, Any]) -> Decimal | None:
    """Σ ``shipping_lines`` ``total + total_tax`` (else ``shipping_total + shipping_tax``; None when
    the order says neither)."""
    if order.get("shipping_lines") is None:
        if order.get("shipping_total") in (None, ""):
            return None
        return _dec(order.get("shipping_total"), "shipping_total") + _dec(order.get("shipping_tax"), "shipping_tax")
    paid = Decimal(0)
    for i, item in enumerate(_list(order.get("shipping_lines"), "shipping_lines")):
        path = f"shipping_lines[{i}]"
        paid += _with_tax(_obj(item, path), path)
    return paid


def _fees(order: Mapping[str, Any]) -> tuple[Decimal | None, Decimal | None]:
    """(fees, order discount) from ``fee_lines`` ``total + total_tax``: the positive ones are fees the
    buyer paid, the negative ones (how WooCommerce plugins grant a cart discount) a discount on the
    order. None where there is none."""
    fees = discount = Decimal(0)
    for i, item in enumerate(_list(order.get("fee_lines"), "fee_lines", required=False)):
        path = f"fee_lines[{i}]"
        total = _with_tax(_obj(item, path), path, signed=True)
        if total > 0:
            fees += total
        else:
            discount -= total
    return (fees or None), (discount or None)


def _buyer_pairs(order: Mapping[str, Any]) -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = []
    for i, meta in enumerate(_list(order.get("meta_data"), "meta_data", required=False)):
        entry = _obj(meta, f"meta_data[{i}]")
        key = entry.get("key")
        if isinstance(key, str):
            pairs.append((key, entry.get("value")))
    return pairs


def _refund_id(order: Mapping[str, Any]) -> str:
    newest: int | None = None
    for i, item in enumerate(_list(order.get("refunds"), "refunds", required=False)):
        refund_id = _obj(item, f"refunds[{i}]").get("id")
        if isinstance(refund_id, int) and not isinstance(refund_id, bool) and (newest is None or refund_id > newest):
            newest = refund_id
    return str(newest) if newest is not None else FULL_REFUND_ID


def _parse_order(payload: Any, topic: str, delivery_id: str) -> PaymentEvent:
    order = _obj(payload, "body")
    if "id" not in order and isinstance(order.get("order"), dict):
        raise MalformedPayload("legacy API payload: set the webhook's API version to WP REST API Integration v3")
    order_id = _str(order.get("id"), "id", required=True)
    status = _str(order.get("status"), "status", required=True)
    date_paid = order.get("date_paid_gmt") or order.get("date_paid")
    if status in PAID_STATUSES:
        if not date_paid:
            raise IgnoredEvent(f"order status {status} without date_paid")
        kind = EventKind.PAID
    elif status == REFUNDED_STATUS:
        kind = EventKind.REFUNDED
    else:
        raise IgnoredEvent(f"order status {status} needs no invoice")
    amount = _dec(order.get("total"), "total", required=True)
    currency = _str(order.get("currency"), "currency", required=True) or ""
    if not _CURRENCY_RE.match(currency):
        raise MalformedPayload("field currency must be a 3-letter ISO code")
    billing = _obj(order.get("billing"), "billing", required=False)
    buyer = buyer_from_attributes(
        _buyer_pairs(order),
        company=_str(billing.get("company"), "billing.company"),
        email=_str(billing.get("email"), "billing.email"),
        mobile=_str(billing.get("phone"), "billing.phone"),
        path="meta_data",
    )
    refund_id: str | None = None
    refund_amount: Decimal | None = None
    occurred_at = _time(order.get("date_paid_gmt")) or _time(order.get("date_paid"))
    if kind is EventKind.REFUNDED:
        if amount <= 0:
            raise IgnoredEvent("refunded order with a zero total")
        refund_id = _refund_id(order)
        refund_amount = amount
        occurred_at = _time(order.get("date_modified_gmt")) or _time(order.get("date_modified"))
    fees, order_discount = _fees(order)
    return PaymentEvent(
        platform=NAME,
        event_id=delivery_id,
        kind=kind,
        order_id=str(order_id),
        amount=amount,
        currency=currency,
        lines=_lines(order),
        buyer=buyer,
        shipping=_shipping(order),
        fees=fees,
        order_discount=order_discount,
        refund_id=refund_id,
        refund_amount=refund_amount,
        occurred_at=occurred_at,
        event_type=f"{topic}:{status}",
    )
