"""Youzan (有赞云) message push: ``trade_TradePaid`` (paid) and the refund-success messages.

How Youzan signs an HTTP push (无容器应用): header ``Event-Sign`` = hex MD5 of
``client_id + raw body + client_secret``, plus ``Event-Type`` (the message type) and ``Client-Id``. No
timestamp: de-duplicate on the body's ``msg_id``. The body is JSON::

    {"client_id": "…", "kdt_id": 56232, "id": "E2020…", "type": "trade_TradePaid", "status": "…",
     "msg": "<URL-encoded order JSON>", "msg_id": "6dc15f0b-…", "version": 1621946649,
     "sign": "…", "test": false, "mode": 1}

Older pushes only carry the body field ``sign`` = MD5(client_id + msg + client_secret). That signature
covers ``msg`` alone (not ``type``, ``msg_id`` or ``test``), so it is accepted only when the store opts in
with ``"allow_body_sign": true``; then the event id is derived from the signed ``msg`` and a paid event
needs payment evidence inside ``msg`` itself.

Secrets (the store's ``webhook_secrets.youzan`` secret, a JSON object)::

    {
      "client_id": "cc939cb8063622a84d",
      "client_secret": "…",            # or "client_secrets": [new, old] while rotating
      "kdt_id": "56232",               # optional: ignore messages of other shops authorised to the app
      "allow_body_sign": false         # optional, see above
    }

Events:

- ``trade_TradePaid`` → ``paid``: order id ``full_order_info.order_info.tid``; amount
  ``full_order_info.pay_info.payment`` (yuan); lines from ``full_order_info.orders[]`` (``outer_sku_id`` /
  ``outer_item_id`` → sku, ``title``, ``num``, ``price``, ``payment``; ``total_fee - payment`` → discount,
  which already holds the line's share of order-level promotions); shipping ``pay_info.post_fee`` (part of
  ``payment``, on no line) → the labelled ``shipping``;
  the buyer's invoice title when the order carries one (``invoice_info``: ``user_name``/``invoice_title``,
  ``taxpayer_id``, ``email``, ``raise_type`` personal/enterprise — best effort, see docs/platforms/youzan.md).
- ``trade_refund_RefundSuccess``, ``trade_refund_RefundSellerAgree``, ``trade_refund_SysRefund`` and the new
  ``youzan_trade_RefundSuccess`` → ``refunded``: ``tid``, ``refund_id``, ``refunded_fee`` (yuan). The message
  carries no order total, so ``amount`` repeats the refund amount.
- test pushes (``test: true``), ``trade_TradeClose`` (a full refund arrives as a refund message; closing
  also happens to unpaid orders) and every other type → ignored.

Youzan counts a push as delivered when the answer contains ``success``: ``{"code": 0, "msg": "success"}``.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, unquote_plus

from chalicelib.domain.china_time import CHINA_TZ as CHINA
from chalicelib.domain.errors import IgnoredEvent, MalformedPayload, SignatureInvalid
from chalicelib.domain.models import Buyer, BuyerType, EventKind, EventLine, PaymentEvent
from chalicelib.webhooks.base import (
    ContentIdentity,
    Outcome,
    Reply,
    constant_time_in,
    json_reply,
    load_json,
    mapping_at,
    secret_list,
    signed_content,
)

NAME = "youzan"
SIGNS_TIMESTAMP = False

PAID_TYPES = frozenset({"trade_TradePaid"})
REFUND_TYPES = frozenset(
    {
        "trade_refund_RefundSuccess",
        "trade_refund_RefundSellerAgree",
        "trade_refund_SysRefund",
        "youzan_trade_RefundSuccess",
    }
)
#: order statuses that prove a payment happened (legacy body-sign mode checks them inside ``msg``)
PAID_STATUSES = frozenset(
    {"TRADE_PAID", "WAIT_SELLER_SEND_GOODS", "WAIT_BUYER_CONFIRM_GOODS", "TRADE_BUYER_SIGNED", "TRADE_SUCCESS"}
)
_AMOUNT_RE = re.compile(r"^\d{1,12}(\.\d{1,2})?$")
_QTY_RE = re.compile(r"^\d{1,9}(\.\d{1,8})?$")


# --- verification ------------------------------------------------------------------------------
def _md5_hex(*parts: bytes) -> bytes:
    return hashlib.md5(b"".join(parts), usedforsecurity=False).hexdigest().encode("ascii")


def _candidate(value: str) -> bytes:
    candidate = value.strip().lower().encode("ascii")
    if len(candidate) != 32:
        raise ValueError("not an MD5 hex digest")
    binascii.unhexlify(candidate)
    return candidate


def _check_signature(
    raw_body: bytes, headers: Mapping[str, str], secrets: Mapping[str, Any]
) -> tuple[Mapping[str, Any], bool]:
    """The verified body and whether it was verified by the legacy body ``sign`` (msg only)."""
    client_id = secrets.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise SignatureInvalid("no client_id configured", code="no_secret")
    client_secrets = [s.encode("utf-8") for s in secret_list(secrets, "client_secret")]
    cid = client_id.encode("utf-8")
    event_sign = headers.get("event-sign")
    if event_sign is not None:
        try:
            candidate = _candidate(event_sign)
            header_client = headers.get("client-id")
            if header_client is not None and header_client.strip() != client_id:
                raise SignatureInvalid("Client-Id is not this store's app", code="app_mismatch")
        except SignatureInvalid:
            raise
        except (ValueError, AttributeError, binascii.Error, UnicodeError):
            raise SignatureInvalid("malformed Event-Sign header", code="malformed_header") from None
        if not constant_time_in(candidate, [_md5_hex(cid, raw_body, s) for s in client_secrets]):
            raise SignatureInvalid("signature does not match", code="bad_signature")
        body = load_json(raw_body)
        if not isinstance(body, Mapping):
            raise MalformedPayload("body is not a JSON object")
        return body, False
    if secrets.get("allow_body_sign") is not True:
        raise SignatureInvalid("missing header Event-Sign", code="missing_header")
    try:  # legacy: the signature is inside the body, which must be read to find it
        body = json.loads(raw_body, parse_float=Decimal)
        sign, msg = body["sign"], body["msg"]
        if not isinstance(sign, str) or not isinstance(msg, str):
            raise TypeError("sign and msg must be strings")
        candidate = _candidate(sign)
        msg_bytes = msg.encode("utf-8")
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeError, RecursionError):
        raise SignatureInvalid("no usable Event-Sign header or body sign", code="missing_signature") from None
    if not constant_time_in(candidate, [_md5_hex(cid, msg_bytes, s) for s in client_secrets]):
        raise SignatureInvalid("signature does not match", code="bad_signature")
    return body, True


# --- parsing helpers ---------------------------------------------------------------------------
def _decode_msg(msg: Any) -> Mapping[str, Any]:
    if isinstance(msg, Mapping):  # the new youzan_trade_* refund messages send an object
        return msg
    if not isinstance(msg, str) or not msg:
        raise MalformedPayload("msg is missing")
    for unquote_fn in (unquote, unquote_plus):
        try:
            decoded = json.loads(unquote_fn(msg, errors="strict"), parse_float=Decimal)
        except (ValueError, RecursionError):
            continue
        if isinstance(decoded, Mapping):
            return decoded
    raise MalformedPayload("msg is not URL-encoded JSON object")


def _obj(parent: Mapping[str, Any], name: str, path: str) -> Mapping[str, Any]:
    value = parent.get(name)
    if not isinstance(value, Mapping):
        raise MalformedPayload(f"{path}{name} is missing or not an object")
    return value


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _yuan(value: Any, path: str) -> Decimal:
    if isinstance(value, Decimal) and value.is_finite() and value >= 0 and _AMOUNT_RE.match(format(value, "f")):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**12:
        return Decimal(value)
    if isinstance(value, str) and _AMOUNT_RE.match(value.strip()):
        return Decimal(value.strip())
    raise MalformedPayload(f"{path} is not an amount in yuan")


def _quantity(value: Any, path: str) -> Decimal:
    if value is None:
        return Decimal(1)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return Decimal(value)
    if isinstance(value, Decimal) and value.is_finite() and value > 0:
        return value
    if isinstance(value, str) and _QTY_RE.match(value.strip()) and Decimal(value.strip()) > 0:
        return Decimal(value.strip())
    raise MalformedPayload(f"{path} is not a positive quantity")


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA)
    except ValueError:
        return None


def _lines(orders: Any) -> tuple[EventLine, ...]:
    if orders is None:
        return ()
    if not isinstance(orders, list):
        raise MalformedPayload("full_order_info.orders is not a list")
    lines = []
    for i, order in enumerate(orders):
        path = f"full_order_info.orders[{i}]"
        if not isinstance(order, Mapping):
            raise MalformedPayload(f"{path} is not an object")
        total = _yuan(order.get("payment"), f"{path}.payment")
        gross = order.get("total_fee")
        discount = Decimal(0)
        if gross is not None and gross != "":
            discount = max(Decimal(0), _yuan(gross, f"{path}.total_fee") - total)
        price = order.get("price")
        lines.append(
            EventLine(
                sku=_text(order.get("outer_sku_id")) or _text(order.get("outer_item_id")),
                name=_text(order.get("title")),
                quantity=_quantity(order.get("num"), f"{path}.num"),
                unit_price=_yuan(price, f"{path}.price") if price not in (None, "") else None,
                total=total,
                discount=discount,
            )
        )
    return tuple(lines)


_TITLE_KEYS = ("user_name", "invoice_title", "title", "raise_name")
_TAX_KEYS = ("taxpayer_id", "tax_id", "tax_no", "taxpayer_identification_number")


def _buyer(full: Mapping[str, Any], order_info: Mapping[str, Any]) -> Buyer | None:
    """The invoice title when the order carries one (field names vary between Youzan versions)."""
    extra = order_info.get("order_extra")
    candidates = [full.get("invoice_info"), order_info.get("invoice_info")]
    if isinstance(extra, Mapping):
        candidates.append(extra.get("invoice_info"))
    for candidate in candidates:
        info = candidate
        if isinstance(candidate, str):
            try:
                info = json.loads(candidate, parse_float=Decimal)
            except ValueError:
                continue
        if not isinstance(info, Mapping):
            continue
        title = next((t for k in _TITLE_KEYS if (t := _text(info.get(k)))), None)
        if not title:
            continue
        tax_id = next((t for k in _TAX_KEYS if (t := _text(info.get(k)))), None)
        raise_type = _text(info.get("raise_type"))
        kind = {"personal": BuyerType.INDIVIDUAL, "enterprise": BuyerType.COMPANY}.get((raise_type or "").lower())
        return Buyer(title=title, tax_id=tax_id, type=kind, email=_text(info.get("email")))
    return None


# --- events ------------------------------------------------------------------------------------
def _post_fee(pay_info: Mapping[str, Any]) -> Decimal | None:
    """运费: ``pay_info.post_fee`` (part of ``payment``, on no line); None when the push has none."""
    post_fee = pay_info.get("post_fee")
    return None if post_fee in (None, "") else _yuan(post_fee, "full_order_info.pay_info.post_fee")


def _paid(
    event_id: str, event_type: str, msg: Mapping[str, Any], fallback_id: str | None, legacy: bool
) -> PaymentEvent:
    full = _obj(msg, "full_order_info", "msg.")
    order_info = _obj(full, "order_info", "full_order_info.")
    pay_info = _obj(full, "pay_info", "full_order_info.")
    if legacy and not (_text(order_info.get("pay_time")) or order_info.get("status") in PAID_STATUSES):
        raise IgnoredEvent("msg shows no payment (body-signed push)")
    order_id = _text(order_info.get("tid")) or fallback_id
    if not order_id:
        raise MalformedPayload("full_order_info.order_info.tid is missing")
    return PaymentEvent(
        platform=NAME,
        event_id=event_id,
        kind=EventKind.PAID,
        order_id=order_id,
        amount=_yuan(pay_info.get("payment"), "full_order_info.pay_info.payment"),
        lines=_lines(full.get("orders")),
        shipping=_post_fee(pay_info),
        buyer=_buyer(full, order_info),
        occurred_at=_time(order_info.get("pay_time")),
        event_type=event_type,
    )


def _refunded(event_id: str, event_type: str, msg: Mapping[str, Any], fallback_id: str | None) -> PaymentEvent:
    order_id = _text(msg.get("tid")) or fallback_id
    if not order_id:
        raise MalformedPayload("msg.tid is missing")
    refund_id = _text(msg.get("refund_id"))
    if not refund_id:
        raise MalformedPayload("msg.refund_id is missing")
    refund = _yuan(msg.get("refunded_fee"), "msg.refunded_fee")
    if refund <= 0:
        raise MalformedPayload("msg.refunded_fee must be positive")
    return PaymentEvent(
        platform=NAME,
        event_id=event_id,
        kind=EventKind.REFUNDED,
        order_id=order_id,
        amount=refund,
        refund_id=refund_id,
        refund_amount=refund,
        occurred_at=_time(msg.get("update_time")),
        event_type=event_type,
    )


def _kdt_ids(secrets: Mapping[str, Any]) -> set[str]:
    ids = {t for t in (_text(secrets.get("kdt_id")),) if t}
    many = secrets.get("kdt_ids")
    if isinstance(many, list):
        ids.update(t for v in many if (t := _text(v)))
    return ids


def verify(raw_body: bytes, headers: Mapping[str, str], secrets: Mapping[str, Any], now: datetime) -> PaymentEvent:
    """Verify a Youzan push and return the payment or refund it announces."""
    del now  # Youzan signs no timestamp
    body: Any = None
    legacy = False
    # _check_signature raises SignatureInvalid until the signature holds; what it raises after that (a
    # body that is not a JSON object) is signed content, like everything below
    with signed_content(lambda: _identity(body, legacy, headers)):
        body, legacy = _check_signature(raw_body, headers, secrets)
        body_client = _text(body.get("client_id"))
        if body_client is not None and body_client != secrets.get("client_id"):
            raise SignatureInvalid("client_id is not this store's app", code="app_mismatch")
        if body.get("test") in (True, "true", "1", 1):
            raise IgnoredEvent("Youzan test push")
        event_type = _text(body.get("type")) or (None if legacy else _text(headers.get("event-type")))
        if not event_type:
            raise MalformedPayload("type is missing")
        kdt_ids = _kdt_ids(secrets)
        if kdt_ids and _text(body.get("kdt_id")) not in kdt_ids:
            raise IgnoredEvent("message of another shop (kdt_id)")
        if event_type not in PAID_TYPES and event_type not in REFUND_TYPES:
            raise IgnoredEvent(f"type {event_type} needs no invoice")

        if legacy:  # msg is all that is signed: derive the de-duplication key from it
            event_id = "msg-sha256:" + hashlib.sha256(str(body["msg"]).encode("utf-8")).hexdigest()
        else:
            event_id = _text(body.get("msg_id")) or ":".join(
                (event_type, _text(body.get("id")) or "", _text(body.get("version")) or "")
            )
        msg = _decode_msg(body.get("msg"))
        fallback_id = None if legacy else _text(body.get("id"))
        if event_type in PAID_TYPES:
            return _paid(event_id, event_type, msg, fallback_id, legacy)
        return _refunded(event_id, event_type, msg, fallback_id)


def _identity(body: Any, legacy: bool, headers: Mapping[str, str]) -> ContentIdentity:
    """What identifies the order of a signed push that cannot be used (best effort)."""
    envelope = body if isinstance(body, Mapping) else {}
    event_type = _text(envelope.get("type")) or (None if legacy else _text(headers.get("event-type")))
    kind = EventKind.PAID if event_type in PAID_TYPES else EventKind.REFUNDED if event_type in REFUND_TYPES else None
    try:
        msg = _decode_msg(envelope.get("msg"))
    except MalformedPayload:
        msg = {}
    info = mapping_at(mapping_at(msg, "full_order_info"), "order_info")
    order_id = _text(msg.get("tid")) or _text(info.get("tid")) or (None if legacy else _text(envelope.get("id")))
    return ContentIdentity(
        event_id=None if legacy else _text(envelope.get("msg_id")),
        kind=kind.value if kind else None,
        order_id=order_id,
        refund_id=_text(msg.get("refund_id")),
    )


def reply(outcome: Outcome, *, order_key: str = "", status: str = "", detail: Mapping[str, Any] | None = None) -> Reply:
    """Youzan counts a push as delivered when the answer contains ``success``."""
    del outcome, order_key, status, detail
    return json_reply(200, {"code": 0, "msg": "success"})
