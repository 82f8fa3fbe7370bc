"""Douyin shop (抖店 / doudian) message push: order paid (tag 101) and refund success (tag 206).

How 抖店 signs: headers ``app-id`` (the app key) and ``event-sign`` = hex MD5 of
``app_key + raw body + app_secret``. There is no timestamp: de-duplicate on each message's ``msg_id``.
The hex digest is compared case-insensitively in constant time; ``app-id`` must equal the app key.

Secrets (the store's ``webhook_secrets.douyin`` secret, a JSON object)::

    {
      "app_key": "7000000000000000000",
      "app_secret": "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",   # or "app_secrets": [new, old] while rotating
      "shop_id": "12345678"                                  # optional: ignore messages of other shops
    }

The body is a JSON array of messages ``[{"tag": "101", "msg_id": "…", "data": "<JSON string>"}, …]``.

- tag ``101`` (trade_TradePaid, 订单支付/确认) → ``paid``: order id ``p_id`` (``shop_order_id`` in newer
  payloads), amount ``pay_amount`` (fen), ``pay_time``. Cash-on-delivery orders (``pay_type`` 0) send
  101 when the merchant confirms them, and are treated the same way.
- tag ``206`` (refund_RefundSuccess, 退款成功) → ``refunded``: refund id ``aftersale_id``, refund amount
  ``refund_amount`` (fen, shipping included), order id ``p_id``. The message carries no order total, so
  ``amount`` repeats the refund amount.
- every other tag (the console's test push with tag ``0``, 100 created, 102 shipped, 200–205 and 207+
  after-sale steps …) → ignored.

**Batches.** One push may carry several messages. :func:`verify_each` returns one ``PaymentEvent`` per
invoice-relevant message (its own ``msg_id`` each), or the ``UnusableContent`` of a message whose content
cannot be used, so that the intake records every message; :func:`verify_all` returns the events and
raises the first ``UnusableContent``. :func:`verify` — the single-event module contract —
returns the event when exactly one message of the batch is relevant, raises ``IgnoredEvent`` when none
is, and raises ``MalformedPayload`` (code ``batch_needs_verify_all``) when several are, so that no event
is silently dropped: callers that can queue several events call ``verify_all``.

抖店 expects the JSON answer ``{"code": 0, "msg": "success"}``.
"""

from __future__ import annotations

import binascii
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

from chalicelib.domain.errors import IgnoredEvent, MalformedPayload, SignatureInvalid, UnusableContent
from chalicelib.domain.models import EventKind, PaymentEvent
from chalicelib.domain.money import fen_to_yuan
from chalicelib.webhooks.base import (
    ContentIdentity,
    Outcome,
    Reply,
    constant_time_in,
    header,
    json_reply,
    load_json,
    plain_id,
    secret_list,
    signed_content,
)

NAME = "douyin"
SIGNS_TIMESTAMP = False

TAG_PAID = "101"
TAG_REFUND_SUCCESS = "206"
TAG_TEST = "0"


# --- verification ------------------------------------------------------------------------------
def _check_signature(raw_body: bytes, headers: Mapping[str, str], secrets: Mapping[str, Any]) -> None:
    app_key = secrets.get("app_key")
    if not isinstance(app_key, str) or not app_key:
        raise SignatureInvalid("no app_key configured", code="no_secret")
    app_secrets = secret_list(secrets, "app_secret")
    try:
        app_id = header(headers, "app-id").strip()
        event_sign = header(headers, "event-sign").strip().lower().encode("ascii")
        method = headers.get("sign-method")
        if method is not None and method.strip().lower() not in ("", "md5"):
            raise SignatureInvalid("unsupported sign-method", code="unsupported_algorithm")
        if len(event_sign) != 32:
            raise SignatureInvalid("event-sign is not an MD5 hex digest", code="malformed_header")
        binascii.unhexlify(event_sign)
    except SignatureInvalid:
        raise
    except (ValueError, AttributeError, binascii.Error, UnicodeError):
        raise SignatureInvalid("malformed event-sign header", code="malformed_header") from None
    if app_id != app_key:
        raise SignatureInvalid("app-id is not this store's app", code="app_mismatch")
    prefix = app_key.encode("utf-8")
    expected = [
        hashlib.md5(prefix + raw_body + s.encode("utf-8"), usedforsecurity=False).hexdigest().encode("ascii")
        for s in app_secrets
    ]
    if not constant_time_in(event_sign, expected):
        raise SignatureInvalid("signature does not match", code="bad_signature")


# --- parsing -----------------------------------------------------------------------------------
def _id(data: Mapping[str, Any], *names: str) -> str:
    for name in names:
        value = data.get(name)
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and value >= 0:
            return str(value)
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise MalformedPayload(f"data.{names[0]} is missing or not an id")


def _fen(data: Mapping[str, Any], name: str) -> Decimal:
    value = data.get(name)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedPayload(f"data.{name} must be a non-negative integer (fen)")
    return fen_to_yuan(value)


def _time(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 10**11:
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def _message_data(message: Mapping[str, Any], index: int) -> Mapping[str, Any]:
    raw = message.get("data")
    if isinstance(raw, str):
        try:
            data = json.loads(raw, parse_float=Decimal)
        except ValueError:
            raise MalformedPayload(f"[{index}].data is not JSON") from None
    else:
        data = raw
    if not isinstance(data, Mapping):
        raise MalformedPayload(f"[{index}].data is not a JSON object")
    return data


def _event(message: Any, index: int, shop_ids: set[str]) -> PaymentEvent | None:
    """The event one message announces, or None when it needs no invoice."""
    if not isinstance(message, Mapping):
        raise MalformedPayload(f"[{index}] is not a JSON object")
    tag = message.get("tag")
    if isinstance(tag, int) and not isinstance(tag, bool):
        tag = str(tag)
    if not isinstance(tag, str):
        raise MalformedPayload(f"[{index}].tag is missing")
    if tag not in (TAG_PAID, TAG_REFUND_SUCCESS):
        return None
    msg_id = message.get("msg_id")
    if not isinstance(msg_id, str) or not msg_id.strip():
        raise MalformedPayload(f"[{index}].msg_id is missing")
    data = _message_data(message, index)
    if shop_ids and str(data.get("shop_id", "")) not in shop_ids:
        return None  # another shop of the same app: not this store's order
    order_id = _id(data, "p_id", "shop_order_id")
    if tag == TAG_PAID:
        return PaymentEvent(
            platform=NAME,
            event_id=msg_id.strip(),
            kind=EventKind.PAID,
            order_id=order_id,
            amount=_fen(data, "pay_amount"),
            occurred_at=_time(data.get("pay_time")),
            event_type=f"tag:{tag}",
        )
    refund = _fen(data, "refund_amount")
    if refund <= 0:
        raise MalformedPayload(f"[{index}].data.refund_amount must be positive")
    return PaymentEvent(
        platform=NAME,
        event_id=msg_id.strip(),
        kind=EventKind.REFUNDED,
        order_id=order_id,
        amount=refund,
        refund_id=_id(data, "aftersale_id"),
        refund_amount=refund,
        occurred_at=_time(data.get("success_time")) or _time(data.get("update_time")),
        event_type=f"tag:{tag}",
    )


def _shop_ids(secrets: Mapping[str, Any]) -> set[str]:
    ids: set[str] = set()
    single = secrets.get("shop_id")
    if isinstance(single, (str, int)) and not isinstance(single, bool) and str(single):
        ids.add(str(single))
    many = secrets.get("shop_ids")
    if isinstance(many, list):
        ids.update(str(v) for v in many if isinstance(v, (str, int)) and not isinstance(v, bool))
    return ids


def verify_each(
    raw_body: bytes, headers: Mapping[str, str], secrets: Mapping[str, Any], now: datetime
) -> list[PaymentEvent | UnusableContent]:
    """Verify a push and return, per invoice-relevant message, its event — or, for a message whose
    content cannot be used, the ``UnusableContent`` saying why, so that one bad message of a batch
    neither hides nor blocks the others."""
    del now  # 抖店 signs no timestamp
    _check_signature(raw_body, headers, secrets)
    with signed_content(ContentIdentity):
        body = load_json(raw_body)
        if isinstance(body, Mapping):  # tolerate a single message sent bare
            body = [body]
        if not isinstance(body, list):
            raise MalformedPayload("body is not a JSON array of messages")
    shop_ids = _shop_ids(secrets)
    found: list[PaymentEvent | UnusableContent] = []
    for i, message in enumerate(body):
        try:
            with signed_content(partial(_identity, message)):
                event = _event(message, i, shop_ids)
        except UnusableContent as exc:
            found.append(exc)
            continue
        if event is not None:
            found.append(event)
    return found


def verify_all(
    raw_body: bytes, headers: Mapping[str, str], secrets: Mapping[str, Any], now: datetime
) -> list[PaymentEvent]:
    """Verify a push and return one event per invoice-relevant message (possibly none); the first
    message whose content cannot be used raises its ``UnusableContent``."""
    found = verify_each(raw_body, headers, secrets, now)
    for item in found:
        if isinstance(item, UnusableContent):
            raise item
    return [e for e in found if isinstance(e, PaymentEvent)]


def _identity(message: Any) -> ContentIdentity:
    """What identifies the order of a signed message that cannot be used (best effort)."""
    msg = message if isinstance(message, Mapping) else {}
    tag = str(msg.get("tag")) if isinstance(msg.get("tag"), str | int) else None
    kind = {TAG_PAID: EventKind.PAID.value, TAG_REFUND_SUCCESS: EventKind.REFUNDED.value}.get(tag or "")
    try:
        data = _message_data(msg, 0)
    except MalformedPayload:
        data = {}
    return ContentIdentity(
        event_id=plain_id(msg.get("msg_id")),
        kind=kind,
        order_id=plain_id(data.get("p_id")) or plain_id(data.get("shop_order_id")),
        refund_id=plain_id(data.get("aftersale_id")),
    )


def verify(raw_body: bytes, headers: Mapping[str, str], secrets: Mapping[str, Any], now: datetime) -> PaymentEvent:
    """The single-event contract: exactly one relevant message, else IgnoredEvent / MalformedPayload."""
    events = verify_all(raw_body, headers, secrets, now)
    if not events:
        raise IgnoredEvent("no message of this push needs an invoice")
    if len(events) > 1:
        raise MalformedPayload(
            f"push carries {len(events)} invoice-relevant messages: use verify_all",
            code="batch_needs_verify_all",
        )
    return events[0]


def reply(outcome: Outcome, *, order_key: str = "", status: str = "", detail: Mapping[str, Any] | None = None) -> Reply:
    """抖店 treats ``{"code": 0, "msg": "success"}`` as delivered."""
    del outcome, order_key, status, detail
    return json_reply(200, {"code": 0, "msg": "success"})
