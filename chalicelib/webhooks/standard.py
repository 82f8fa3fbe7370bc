"""Standard Webhooks: the project's own default format, for relays and custom shops.

Platforms without HTTP push (Taobao/Tmall, Pinduoduo, JD) and custom shops send events through a
relay that signs them the Standard Webhooks way: headers ``webhook-id``, ``webhook-timestamp`` (Unix
seconds, ±5 min) and ``webhook-signature`` (space-separated ``v1,<base64>`` entries), HMAC-SHA256
keyed with the base64-decoded ``whsec_`` secret over ``{id}.{timestamp}.{raw body}``. The secret value
is ``{"secrets": ["whsec_…", …]}`` (several during rotation) or ``{"secret": "whsec_…"}``. The body
(documented for integrators in ``docs/platforms/standard.md``) is ``{"type": "order.paid" |
"order.refunded", "timestamp": ISO-8601, "data": {order_id, amount, currency, lines[], shipping,
fees, order_discount, buyer{}, refund_id, refund_amount}}``: money is a decimal string in yuan
(``"100.00"``; JSON numbers are read exactly as Decimal, never float); ``amount`` is required for
``order.paid`` and defaults to ``refund_amount`` for ``order.refunded``; ``shipping``, ``fees`` and
``order_discount`` are the amounts the relay labels outside its lines (a line with SKU ``shipping``
adds to ``shipping`` and is no goods line); other types are genuine but ignored. The de-duplication key
is the ``webhook-id`` header.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from chalicelib.domain.errors import IgnoredEvent, MalformedPayload, SignatureInvalid
from chalicelib.domain.models import Buyer, BuyerType, EventKind, EventLine, PaymentEvent
from chalicelib.webhooks.base import (
    ContentIdentity,
    Outcome,
    Reply,
    accepted_reply,
    check_timestamp,
    constant_time_in,
    header,
    load_json,
    mapping_at,
    parse_int_header,
    plain_id,
    secret_list,
    signed_content,
)
from chalicelib.webhooks.fields import amount as _amount
from chalicelib.webhooks.fields import iso_time as _iso_time
from chalicelib.webhooks.fields import obj as _obj
from chalicelib.webhooks.fields import text as _str

NAME = "standard"
SIGNS_TIMESTAMP = True

PAID_TYPE = "order.paid"
REFUNDED_TYPE = "order.refunded"
SHIPPING_SKU = "shipping"

_SECRET_PREFIX = "whsec_"  # noqa: S105 - the format prefix, not a secret
_ID_RE = re.compile(r"^[\x21-\x7e]{1,256}$")  # printable ASCII, no spaces
_TS_RE = re.compile(r"^[0-9]{1,11}$")
_CURRENCY_RE = re.compile(r"^[A-Za-z]{3}$")
_MAX_SIGNATURE_HEADER = 8192
_MAX_SIGNATURES = 32
_MAX_LINES = 1000
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
def _keys(secrets: Mapping[str, Any]) -> list[bytes]:
    """The HMAC keys: each ``whsec_<base64>`` secret decoded (as the reference library does)."""
    keys: list[bytes] = []
    for value in secret_list(secrets):
        raw = value.strip()
        if raw.startswith(_SECRET_PREFIX):
            raw = raw[len(_SECRET_PREFIX) :]
        try:
            key = base64.b64decode(raw + "==")
        except (binascii.Error, ValueError):
            continue
        if key:
            keys.append(key)
    if not keys:
        raise SignatureInvalid("no usable secret configured", code="no_secret")
    return keys


def _parse_headers(headers: Mapping[str, str]) -> tuple[str, int, list[bytes]]:
    """(id, timestamp, v1 signatures) from the headers; anything odd → SignatureInvalid."""
    try:
        msg_id = header(headers, "webhook-id").strip()
        if not _ID_RE.match(msg_id):
            raise SignatureInvalid("header webhook-id is malformed", code="malformed_header")
        ts_text = header(headers, "webhook-timestamp").strip()
        if not _TS_RE.match(ts_text):
            raise SignatureInvalid("header webhook-timestamp is not an integer", code="malformed_header")
        timestamp = parse_int_header(ts_text, "webhook-timestamp")
        sig_header = header(headers, "webhook-signature")
        if len(sig_header) > _MAX_SIGNATURE_HEADER:
            raise SignatureInvalid("header webhook-signature is too long", code="malformed_header")
        entries = sig_header.split()
        if not entries or len(entries) > _MAX_SIGNATURES:
            raise SignatureInvalid("header webhook-signature has no usable entry", code="malformed_header")
        signatures: list[bytes] = []
        for entry in entries:
            version, sep, value = entry.partition(",")
            if not sep:
                raise SignatureInvalid("header webhook-signature entry lacks 'v1,'", code="malformed_header")
            if version != "v1":
                continue  # other schemes (v1a asymmetric …) are not ours
            try:
                signatures.append(base64.b64decode(value, validate=True))
            except (binascii.Error, ValueError):
                continue  # one bad entry must not hide a good one
        if not signatures:
            raise SignatureInvalid("header webhook-signature has no valid v1 entry", code="malformed_header")
        return msg_id, timestamp, signatures
    except SignatureInvalid:
        raise
    except Exception:  # any parsing surprise is a bad header, never a 500
        raise SignatureInvalid("malformed signature headers", code="malformed_header") from None


def verify(raw_body: bytes, headers: Mapping[str, str], secrets: Mapping[str, Any], now: datetime) -> PaymentEvent:
    """Verify a Standard Webhooks delivery and parse it into a ``PaymentEvent``."""
    msg_id, timestamp, signatures = _parse_headers(headers)
    keys = _keys(secrets)
    signed = f"{msg_id}.{timestamp}.".encode() + bytes(raw_body)
    expected = [hmac.new(key, signed, hashlib.sha256).digest() for key in keys]
    matched = False
    for sig in signatures:  # no short-circuit: every entry costs the same
        matched |= constant_time_in(sig, expected)
    if not matched:
        raise SignatureInvalid("no matching signature", code="bad_signature")
    check_timestamp(timestamp, now)
    payload: Any = None
    with signed_content(lambda: _identity(payload), event_id=msg_id):
        payload = load_json(raw_body)
        return _parse_event(payload, msg_id, timestamp)


def _identity(payload: Any) -> ContentIdentity:
    """What identifies the order of a signed body that cannot be used (best effort)."""
    body = payload if isinstance(payload, Mapping) else {}
    data = mapping_at(body, "data")
    event_type = body.get("type")
    kinds = {PAID_TYPE: EventKind.PAID.value, REFUNDED_TYPE: EventKind.REFUNDED.value}
    return ContentIdentity(
        kind=kinds.get(event_type) if isinstance(event_type, str) else None,
        order_id=plain_id(data.get("order_id")),
        refund_id=plain_id(data.get("refund_id")),
    )


def reply(outcome: Outcome, *, order_key: str, status: str, detail: Mapping[str, Any] | None = None) -> Reply:
    """Standard Webhooks senders only look at the 2xx status; the JSON body helps relays log."""
    return accepted_reply(outcome, order_key=order_key, status=status, detail=detail)


# --- payload -----------------------------------------------------------------------------------


def _dec(value: Any, path: str, *, required: bool = False, positive: bool = False) -> Decimal | None:
    if value is None or value == "":
        if required:
            raise MalformedPayload(f"missing field {path}")
        return None
    result = _amount(value, path)
    if positive and result == 0:
        raise MalformedPayload(f"field {path} is out of range")
    return result


def _time(value: Any) -> datetime | None:
    """An ISO-8601 string or Unix seconds; anything else is simply not recorded."""
    try:
        if isinstance(value, str):
            return _iso_time(value)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10**11:
            return datetime.fromtimestamp(value, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _lines(value: Any) -> tuple[EventLine, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise MalformedPayload("field data.lines must be a list")
    if len(value) > _MAX_LINES:
        raise MalformedPayload("field data.lines has too many entries")
    lines: list[EventLine] = []
    for i, item in enumerate(value):
        path = f"data.lines[{i}]"
        line = _obj(item, path)
        sku = _str(line.get("sku"), f"{path}.sku")
        name = _str(line.get("name"), f"{path}.name")
        if sku is None and name is None:
            raise MalformedPayload(f"missing field {path}.sku or {path}.name")
        quantity = _dec(line.get("quantity"), f"{path}.quantity", positive=True)
        lines.append(
            EventLine(
                sku=sku,
                name=name,
                quantity=quantity if quantity is not None else Decimal(1),
                unit_price=_dec(line.get("unit_price"), f"{path}.unit_price"),
                total=_dec(line.get("total"), f"{path}.total", required=True),
                discount=_dec(line.get("discount"), f"{path}.discount") or Decimal(0),
            )
        )
    return tuple(lines)


def _shipping(lines: tuple[EventLine, ...], labelled: Decimal | None) -> tuple[tuple[EventLine, ...], Decimal | None]:
    """``data.shipping`` plus the lines with SKU ``shipping`` (the documented convention for a relay
    that sends shipping as a line): shipping is labelled, never a goods line."""
    shipping_lines = [line for line in lines if line.sku == SHIPPING_SKU]
    if not shipping_lines:
        return lines, labelled
    paid = sum((line.total for line in shipping_lines), labelled or Decimal(0))
    return tuple(line for line in lines if line.sku != SHIPPING_SKU), paid


def _buyer(value: Any) -> Buyer | None:
    data = _obj(value, "data.buyer", required=False)
    if not data:
        return None
    fields = {
        key: _str(data.get(key), f"data.buyer.{key}")
        for key in ("title", "tax_id", "address", "phone", "bank", "account", "email", "mobile")
    }
    kind = _str(data.get("type"), "data.buyer.type")
    buyer_type = None
    if kind is not None:
        buyer_type = _BUYER_TYPES.get(kind.lower())
        if buyer_type is None:
            raise MalformedPayload("field data.buyer.type must be 'company' or 'individual'")
    if buyer_type is None and not any(fields.values()):
        return None
    return Buyer(type=buyer_type, **fields)


def _parse_event(payload: Any, msg_id: str, timestamp: int) -> PaymentEvent:
    body = _obj(payload, "body")
    raw_type = body.get("type")
    if raw_type is not None and not isinstance(raw_type, str):
        raise MalformedPayload("field type must be a string")
    event_type = _str(raw_type, "type", required=True)
    if event_type not in (PAID_TYPE, REFUNDED_TYPE):
        raise IgnoredEvent(f"event type {event_type} needs no invoice")
    data = _obj(body.get("data"), "data")
    order_id = _str(data.get("order_id"), "data.order_id", required=True)
    currency = _str(data.get("currency"), "data.currency") or "CNY"
    if not _CURRENCY_RE.match(currency):
        raise MalformedPayload("field data.currency must be a 3-letter ISO code")
    refund_id: str | None = None
    refund_amount: Decimal | None = None
    if event_type == REFUNDED_TYPE:
        kind = EventKind.REFUNDED
        refund_id = _str(data.get("refund_id"), "data.refund_id", required=True)
        refund_amount = _dec(data.get("refund_amount"), "data.refund_amount", required=True, positive=True)
        order_amount = _dec(data.get("amount"), "data.amount")
        amount = order_amount if order_amount is not None else refund_amount
    else:
        kind = EventKind.PAID
        amount = _dec(data.get("amount"), "data.amount", required=True)
    occurred_at = _time(body.get("timestamp")) or datetime.fromtimestamp(timestamp, tz=UTC)
    lines, shipping = _shipping(_lines(data.get("lines")), _dec(data.get("shipping"), "data.shipping"))
    return PaymentEvent(
        platform=NAME,
        event_id=msg_id,
        kind=kind,
        order_id=str(order_id),
        amount=amount,
        currency=currency,
        lines=lines,
        shipping=shipping,
        fees=_dec(data.get("fees"), "data.fees"),
        order_discount=_dec(data.get("order_discount"), "data.order_discount"),
        buyer=_buyer(data.get("buyer")),
        refund_id=refund_id,
        refund_amount=refund_amount,
        occurred_at=occurred_at,
        event_type=event_type,
    )
