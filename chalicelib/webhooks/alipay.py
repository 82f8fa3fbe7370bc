"""Alipay asynchronous notifications (支付宝异步通知, ``notify_type=trade_status_sync``).

How Alipay signs: the notify is an ``application/x-www-form-urlencoded`` POST whose ``sign`` parameter is
the base64 RSA-SHA256 (``sign_type=RSA2``, PKCS#1 v1.5) signature, made with Alipay's private key, over
the ``k=v&k=v`` string of every other parameter — ``sign`` and ``sign_type`` removed, empty values
removed (as the official SDKs' ``getSignContent`` does), sorted by key, values URL-decoded, in the
notify's ``charset`` (``utf-8`` or ``gbk``). The exact percent-decoded bytes are verified, so no
re-encoding can change what is checked. Alipay signs no timestamp (``notify_time`` is informative):
de-duplicate on ``notify_id``.

Secrets (the store's ``webhook_secrets.alipay`` secret, a JSON object)::

    {
      "app_id": "2021000000000000",                       # the notify's app_id must equal it
      "alipay_public_key": "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA…"
    }

``alipay_public_key`` is the "支付宝公钥" (bare base64 or PEM) or, in certificate mode, the content of
``alipayCertPublicKey_RSA2.crt`` (PEM certificate). ``alipay_public_keys`` (a list) and ``app_ids`` (a
list) are accepted too (key rotation, several apps on one store).

Events:

- a notify carrying ``refund_fee`` (> 0) → ``refunded``: refund id ``out_biz_no``; refund amount
  ``refund_fee``. NB: Alipay's ``refund_fee`` is the *cumulative* amount refunded on the trade so far:
  the event says so (``refund_cumulative``) and the red flow reverses only what the trade's earlier
  refunds did not (``chalicelib.domain.red_allocation.refund_amount``).
  ``TRADE_CLOSED`` after a full refund carries it too (refund id ``out_biz_no``, else ``<trade_no>:closed``).
- ``TRADE_SUCCESS`` / ``TRADE_FINISHED`` without refund fields → ``paid``: ``out_trade_no``,
  ``total_amount`` (yuan), ``gmt_payment``. A trade that supports refunds notifies both statuses over
  its life (two notify ids): downstream idempotency on the order key absorbs the second one.
- ``WAIT_BUYER_PAY``, ``TRADE_CLOSED`` without a refund (closed unpaid), other notify types → ``IgnoredEvent``.

Alipay wants the plain-text body ``success``; anything else makes it retry (up to 8 times over 25 h).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_to_bytes

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from chalicelib.domain.china_time import CHINA_TZ as CHINA
from chalicelib.domain.errors import IgnoredEvent, MalformedPayload, SignatureInvalid
from chalicelib.domain.models import EventKind, PaymentEvent
from chalicelib.webhooks.base import ContentIdentity, Outcome, Reply, plain_id, secret_list, signed_content

NAME = "alipay"
SIGNS_TIMESTAMP = False

SIGN_TYPE = "RSA2"

#: the ``charset`` parameter → the Python codec that decodes it (gb18030 is a superset of gbk / gb2312)
_CHARSETS = {"utf-8": "utf-8", "utf8": "utf-8", "gbk": "gb18030", "gb2312": "gb18030", "gb18030": "gb18030"}
_AMOUNT_RE = re.compile(r"^\d{1,12}(\.\d{1,2})?$")
_MAX_PARAMS = 200
_PAID_STATUSES = ("TRADE_SUCCESS", "TRADE_FINISHED")


# --- form parsing ------------------------------------------------------------------------------
def _parse_form(raw_body: bytes) -> dict[str, bytes]:
    """Form parameters as ASCII keys → percent-decoded value bytes; structural garbage → SignatureInvalid."""
    params: dict[str, bytes] = {}
    body = raw_body.strip()
    if not body:
        raise SignatureInvalid("empty notify body", code="missing_signature")
    pieces = body.split(b"&")
    if len(pieces) > _MAX_PARAMS:
        raise SignatureInvalid("too many form parameters", code="malformed_body")
    for piece in pieces:
        if not piece:
            continue
        key_b, _, value_b = piece.partition(b"=")
        try:
            key = unquote_to_bytes(key_b.replace(b"+", b" ")).decode("ascii")
        except UnicodeDecodeError:
            raise SignatureInvalid("form parameter name is not ASCII", code="malformed_body") from None
        if not key or key in params:
            raise SignatureInvalid("empty or repeated form parameter", code="malformed_body")
        params[key] = unquote_to_bytes(value_b.replace(b"+", b" "))
    return params


def _codec(params: Mapping[str, bytes]) -> str:
    raw = params.get("charset", b"utf-8")
    try:
        name = raw.decode("ascii").strip().lower()
    except UnicodeDecodeError:
        name = ""
    codec = _CHARSETS.get(name or "utf-8")
    if codec is None:
        raise SignatureInvalid("unsupported charset", code="malformed_body")
    return codec


# --- keys --------------------------------------------------------------------------------------
@lru_cache(maxsize=32)
def _load_key(material: str) -> rsa.RSAPublicKey:
    text = material.strip()
    key: Any
    if "BEGIN CERTIFICATE" in text:
        key = x509.load_pem_x509_certificate(text.encode("ascii")).public_key()
    elif "BEGIN" in text:
        key = serialization.load_pem_public_key(text.encode("ascii"))
    else:
        key = serialization.load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    if not isinstance(key, rsa.RSAPublicKey):
        raise TypeError("Alipay public key is not RSA")
    return key


def _public_keys(secrets: Mapping[str, Any]) -> list[rsa.RSAPublicKey]:
    keys = []
    for material in secret_list(secrets, "alipay_public_key"):
        try:
            keys.append(_load_key(material))
        except (ValueError, TypeError, UnsupportedAlgorithm, binascii.Error, UnicodeEncodeError):
            raise SignatureInvalid("Alipay public key cannot be loaded", code="bad_secret") from None
    return keys


# --- verification ------------------------------------------------------------------------------
def _check_signature(params: Mapping[str, bytes], secrets: Mapping[str, Any]) -> None:
    try:
        sign_raw = params.get("sign")
        if not sign_raw:
            raise SignatureInvalid("missing sign parameter", code="missing_signature")
        sign_type = params.get("sign_type", b"").decode("ascii").strip()
        if sign_type != SIGN_TYPE:
            raise SignatureInvalid("sign_type must be RSA2", code="unsupported_algorithm")
        signature = base64.b64decode(sign_raw.strip(), validate=True)
    except SignatureInvalid:
        raise
    except (ValueError, binascii.Error, UnicodeError):
        raise SignatureInvalid("sign is not base64", code="malformed_signature") from None
    content = b"&".join(
        k.encode("ascii") + b"=" + v for k, v in sorted(params.items()) if k not in ("sign", "sign_type") and v
    )
    keys = _public_keys(secrets)
    for key in keys:
        try:
            key.verify(signature, content, padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError, TypeError):
            continue
        return
    raise SignatureInvalid("signature does not match", code="bad_signature")


# --- parsing -----------------------------------------------------------------------------------
def _decode(params: Mapping[str, bytes], codec: str) -> dict[str, str]:
    try:
        return {k: v.decode(codec) for k, v in params.items()}
    except UnicodeDecodeError:
        raise MalformedPayload(f"a parameter is not valid {codec}") from None


def _required(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name, "").strip()
    if not value:
        raise MalformedPayload(f"{name} is missing")
    return value


def _yuan(fields: Mapping[str, str], name: str) -> Decimal:
    value = _required(fields, name)
    if not _AMOUNT_RE.match(value):
        raise MalformedPayload(f"{name} is not an amount in yuan")
    return Decimal(value)


def _time(value: str | None) -> datetime | None:
    """Alipay times are Beijing time ``yyyy-MM-dd HH:mm:ss`` (``gmt_refund`` may add ``.SSS``)."""
    if not value:
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f"):
        try:
            return datetime.strptime(value.strip(), fmt).replace(tzinfo=CHINA)
        except ValueError:
            continue
    return None


def verify(raw_body: bytes, headers: Mapping[str, str], secrets: Mapping[str, Any], now: datetime) -> PaymentEvent:
    """Verify an Alipay async notify (form body) and return the payment or refund it announces."""
    del headers, now  # Alipay signs the form itself and no timestamp
    params = _parse_form(raw_body)
    codec = _codec(params)
    _check_signature(params, secrets)
    fields: dict[str, str] = {}
    with signed_content(lambda: _identity(fields)):
        fields = _decode(params, codec)
        app_ids = secret_list(secrets, "app_id")
        if fields.get("app_id", "").strip() not in app_ids:
            raise SignatureInvalid("notify app_id is not this store's app", code="app_mismatch")

        notify_id = _required(fields, "notify_id")
        notify_type = fields.get("notify_type", "trade_status_sync")
        if notify_type != "trade_status_sync":
            raise IgnoredEvent(f"notify_type {notify_type} needs no invoice")
        status = _required(fields, "trade_status")
        order_id = _required(fields, "out_trade_no")
        event_type = f"{notify_type}:{status}"

        if fields.get("refund_fee", "").strip() or fields.get("out_biz_no", "").strip():
            refund = _yuan(fields, "refund_fee")
            if refund > 0:  # "0.00" is no refund: fall through to the trade status
                refund_id = fields.get("out_biz_no", "").strip()
                if not refund_id:
                    if status != "TRADE_CLOSED":
                        raise MalformedPayload("out_biz_no is missing on a partial refund notify")
                    refund_id = f"{fields.get('trade_no', '').strip() or order_id}:closed"
                return PaymentEvent(
                    platform=NAME,
                    event_id=notify_id,
                    kind=EventKind.REFUNDED,
                    order_id=order_id,
                    amount=_yuan(fields, "total_amount") if fields.get("total_amount") else refund,
                    refund_id=refund_id,
                    refund_amount=refund,
                    refund_cumulative=True,  # refund_fee is the total refunded on the trade so far
                    occurred_at=_time(fields.get("gmt_refund")) or _time(fields.get("notify_time")),
                    event_type=event_type,
                )
        if status in _PAID_STATUSES:
            return PaymentEvent(
                platform=NAME,
                event_id=notify_id,
                kind=EventKind.PAID,
                order_id=order_id,
                amount=_yuan(fields, "total_amount"),
                occurred_at=_time(fields.get("gmt_payment")) or _time(fields.get("notify_time")),
                event_type=event_type,
            )
        raise IgnoredEvent(f"trade_status {status} needs no invoice")


def _identity(fields: Mapping[str, str]) -> ContentIdentity:
    """What identifies the order of a signed notify that cannot be used (best effort)."""
    refund_id = plain_id(fields.get("out_biz_no"))
    refunded = refund_id is not None or fields.get("refund_fee", "").strip() not in ("", "0", "0.0", "0.00")
    paid = fields.get("trade_status") in _PAID_STATUSES
    kind = EventKind.REFUNDED if refunded else EventKind.PAID if paid else None
    return ContentIdentity(
        event_id=plain_id(fields.get("notify_id")),
        kind=kind.value if kind else None,
        order_id=plain_id(fields.get("out_trade_no")),
        refund_id=refund_id,
    )


def reply(outcome: Outcome, *, order_key: str = "", status: str = "", detail: Mapping[str, Any] | None = None) -> Reply:
    """Alipay stops retrying only on the exact plain-text body ``success``."""
    del outcome, order_key, status, detail
    return Reply(200, b"success", "text/plain")
