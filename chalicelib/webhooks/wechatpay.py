"""WeChat Pay API v3 notifications (微信支付 APIv3 回调通知): payment success and refund success.

How WeChat signs: headers ``Wechatpay-Timestamp``, ``-Nonce``, ``-Serial``, ``-Signature`` and
``-Signature-Type: WECHATPAY2-SHA256-RSA2048``; the signature is base64 RSA-SHA256 (PKCS#1 v1.5) over
``"{timestamp}\\n{nonce}\\n{raw body}\\n"`` made with the key named by ``Wechatpay-Serial``: a platform
certificate serial (hex) or a platform public key id (``PUB_KEY_ID_…``). The business data sits in
``resource``, encrypted with AEAD_AES_256_GCM under the merchant's 32-byte APIv3 key.

Secrets (the store's ``webhook_secrets.wechatpay`` secret, a JSON object)::

    {
      "apiv3_key": "<the 32-character APIv3 key>",          # or "apiv3_keys": [new, old] while changing it
      "platform_keys": {                                     # several at once during rotation
        "5157F09EFDC096DE15EBE81A47057A7232F1B8E1": "-----BEGIN CERTIFICATE-----…",
        "PUB_KEY_ID_0114232134912410000000000000": "-----BEGIN PUBLIC KEY-----…"
      }
    }

Values of ``platform_keys`` may be a PEM certificate, a PEM public key or the bare base64 of a public
key. An expired certificate no longer verifies (``key_expired``).

Events:

- ``TRANSACTION.SUCCESS`` with ``trade_state == SUCCESS`` → ``paid``:
  ``out_trade_no`` is the order id, ``amount.total`` (fen) the amount, ``amount.currency`` the currency.
- ``REFUND.SUCCESS`` with ``refund_status == SUCCESS`` → ``refunded``: ``out_refund_no`` is the refund id
  (``refund_id`` when absent), ``amount.refund`` (fen) the refund amount, ``amount.total`` the order amount.
- Everything else (``REFUND.ABNORMAL``, ``REFUND.CLOSED``, ``FAPIAO.*`` …) → ``IgnoredEvent``.

The de-duplication key is the notification's ``id``. Probe notifications whose signature starts with
``WECHATPAY/SIGNTEST/`` are rejected (``probe_signature``), as WeChat asks. The answer WeChat expects is
HTTP 200/204; the JSON ``{"code": "SUCCESS", "message": "成功"}`` is sent for clarity.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chalicelib.domain.errors import IgnoredEvent, MalformedPayload, SignatureInvalid
from chalicelib.domain.models import EventKind, PaymentEvent
from chalicelib.domain.money import fen_to_yuan
from chalicelib.webhooks.base import (
    ContentIdentity,
    Outcome,
    Reply,
    check_timestamp,
    header,
    json_reply,
    load_json,
    parse_int_header,
    plain_id,
    secret_list,
    signed_content,
)

NAME = "wechatpay"
SIGNS_TIMESTAMP = True

SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
PROBE_PREFIX = "WECHATPAY/SIGNTEST/"
AEAD = "AEAD_AES_256_GCM"

PAID_EVENT = "TRANSACTION.SUCCESS"
REFUND_EVENT = "REFUND.SUCCESS"

_MAX_SIGNATURE_B64 = 2048  # an RSA-4096 signature is 684 characters of base64


# --- keys --------------------------------------------------------------------------------------
@lru_cache(maxsize=64)
def _load_key(material: str) -> tuple[rsa.RSAPublicKey, datetime | None, datetime | None]:
    """A platform key from PEM certificate / PEM public key / bare base64 DER; with its validity."""
    text = material.strip()
    not_before: datetime | None = None
    not_after: datetime | None = None
    if "BEGIN CERTIFICATE" in text:
        cert = x509.load_pem_x509_certificate(text.encode("ascii"))
        key: Any = cert.public_key()
        not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    elif "BEGIN" in text:
        key = serialization.load_pem_public_key(text.encode("ascii"))
    else:
        key = serialization.load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    if not isinstance(key, rsa.RSAPublicKey):
        raise TypeError("platform key is not an RSA public key")
    return key, not_before, not_after


def _platform_key(secrets: Mapping[str, Any], serial: str, now: datetime) -> rsa.RSAPublicKey:
    keys = secrets.get("platform_keys")
    if not isinstance(keys, Mapping) or not keys:
        raise SignatureInvalid("no platform key configured", code="no_secret")
    material = keys.get(serial)
    if material is None:  # certificate serials are hex: match regardless of case
        wanted = serial.upper()
        material = next((v for k, v in keys.items() if isinstance(k, str) and k.upper() == wanted), None)
    if material is None:
        raise SignatureInvalid("Wechatpay-Serial names no configured platform key", code="unknown_key")
    if not isinstance(material, str):
        raise SignatureInvalid("platform key is not text", code="bad_secret")
    try:
        key, not_before, not_after = _load_key(material)
    except (ValueError, TypeError, UnsupportedAlgorithm, binascii.Error, UnicodeEncodeError):
        raise SignatureInvalid("platform key cannot be loaded", code="bad_secret") from None
    if (not_before is not None and now < not_before) or (not_after is not None and now > not_after):
        raise SignatureInvalid("platform certificate is not valid now", code="key_expired")
    return key


def _apiv3_keys(secrets: Mapping[str, Any]) -> list[bytes]:
    keys = [k.encode("utf-8") for k in secret_list(secrets, "apiv3_key")]
    if any(len(k) != 32 for k in keys):
        raise SignatureInvalid("APIv3 key must be 32 bytes", code="bad_secret")
    return keys


# --- verification ------------------------------------------------------------------------------
def _check_signature(raw_body: bytes, headers: Mapping[str, str], secrets: Mapping[str, Any], now: datetime) -> None:
    """Raise SignatureInvalid / TimestampOutOfWindow unless the headers sign ``raw_body``."""
    try:
        signature_b64 = header(headers, "Wechatpay-Signature")
        if signature_b64.startswith(PROBE_PREFIX):
            raise SignatureInvalid("WeChat Pay probe signature", code="probe_signature")
        sig_type = headers.get("wechatpay-signature-type")
        if sig_type is not None and sig_type.strip() != SIGNATURE_TYPE:
            raise SignatureInvalid("unsupported Wechatpay-Signature-Type", code="unsupported_algorithm")
        timestamp = header(headers, "Wechatpay-Timestamp")
        nonce = header(headers, "Wechatpay-Nonce")
        serial = header(headers, "Wechatpay-Serial").strip()
        ts = parse_int_header(timestamp, "Wechatpay-Timestamp")
        if len(signature_b64) > _MAX_SIGNATURE_B64:
            raise SignatureInvalid("Wechatpay-Signature is too long", code="malformed_header")
        signature = base64.b64decode(signature_b64.strip(), validate=True)
        message = timestamp.encode("utf-8") + b"\n" + nonce.encode("utf-8") + b"\n" + raw_body + b"\n"
    except SignatureInvalid:
        raise
    except (ValueError, TypeError, AttributeError, binascii.Error, UnicodeError):
        raise SignatureInvalid("malformed WeChat Pay signature header", code="malformed_header") from None
    check_timestamp(ts, now)
    key = _platform_key(secrets, serial, now)
    try:
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError):
        raise SignatureInvalid("signature does not match", code="bad_signature") from None


def _decrypt(resource: Mapping[str, Any], keys: list[bytes]) -> Any:
    if resource.get("algorithm") != AEAD:
        raise MalformedPayload("resource.algorithm is not AEAD_AES_256_GCM")
    nonce, ciphertext = resource.get("nonce"), resource.get("ciphertext")
    associated = resource.get("associated_data") or ""
    if not isinstance(nonce, str) or not isinstance(ciphertext, str) or not isinstance(associated, str):
        raise MalformedPayload("resource.nonce / resource.ciphertext / resource.associated_data must be strings")
    try:
        data = base64.b64decode(ciphertext, validate=True)
        nonce_b, ad_b = nonce.encode("utf-8"), associated.encode("utf-8")
    except (ValueError, binascii.Error, UnicodeError):
        raise SignatureInvalid("resource cannot be decrypted", code="decrypt_failed") from None
    for key in keys:
        try:
            plain = AESGCM(key).decrypt(nonce_b, data, ad_b)
        except (InvalidTag, ValueError, OverflowError):
            continue
        return load_json(plain)
    raise SignatureInvalid("resource cannot be decrypted with the APIv3 key", code="decrypt_failed")


# --- parsing -----------------------------------------------------------------------------------
def _str_field(obj: Mapping[str, Any], name: str, path: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value.strip():
        raise MalformedPayload(f"{path}{name} is missing or not a string")
    return value.strip()


def _fen(obj: Any, name: str, path: str) -> Decimal:
    value = obj.get(name) if isinstance(obj, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedPayload(f"{path}{name} must be a non-negative integer (fen)")
    return fen_to_yuan(value)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _paid(event_id: str, event_type: str, res: Mapping[str, Any], created: datetime | None) -> PaymentEvent:
    if res.get("trade_state") != "SUCCESS":
        raise IgnoredEvent(f"trade_state {res.get('trade_state')!r} is not SUCCESS")
    amount = res.get("amount")
    if not isinstance(amount, Mapping):
        raise MalformedPayload("resource.amount is missing")
    currency = amount.get("currency", "CNY")
    if not isinstance(currency, str) or not currency:
        raise MalformedPayload("resource.amount.currency must be a string")
    return PaymentEvent(
        platform=NAME,
        event_id=event_id,
        kind=EventKind.PAID,
        order_id=_str_field(res, "out_trade_no", "resource."),
        amount=_fen(amount, "total", "resource.amount."),
        currency=currency,
        occurred_at=_time(res.get("success_time")) or created,
        event_type=event_type,
    )


def _refunded(event_id: str, event_type: str, res: Mapping[str, Any], created: datetime | None) -> PaymentEvent:
    status = res.get("refund_status")
    if status is not None and status != "SUCCESS":
        raise IgnoredEvent(f"refund_status {status!r} is not SUCCESS")
    amount = res.get("amount")
    if not isinstance(amount, Mapping):
        raise MalformedPayload("resource.amount is missing")
    refund_id = res.get("out_refund_no") or res.get("refund_id")
    if not isinstance(refund_id, str) or not refund_id.strip():
        raise MalformedPayload("resource.out_refund_no is missing or not a string")
    refund = _fen(amount, "refund", "resource.amount.")
    if refund <= 0:
        raise MalformedPayload("resource.amount.refund must be positive")
    return PaymentEvent(
        platform=NAME,
        event_id=event_id,
        kind=EventKind.REFUNDED,
        order_id=_str_field(res, "out_trade_no", "resource."),
        amount=_fen(amount, "total", "resource.amount."),
        refund_id=refund_id.strip(),
        refund_amount=refund,
        occurred_at=_time(res.get("success_time")) or created,
        event_type=event_type,
    )


def verify(raw_body: bytes, headers: Mapping[str, str], secrets: Mapping[str, Any], now: datetime) -> PaymentEvent:
    """Verify a WeChat Pay v3 notification and return the payment or refund it announces."""
    _check_signature(raw_body, headers, secrets, now)
    envelope: Any = None
    decrypted: Any = None
    with signed_content(lambda: _identity(envelope, decrypted)):
        envelope = load_json(raw_body)
        if not isinstance(envelope, Mapping):
            raise MalformedPayload("body is not a JSON object")
        event_id = _str_field(envelope, "id", "")
        event_type = _str_field(envelope, "event_type", "")
        if event_type not in (PAID_EVENT, REFUND_EVENT):
            raise IgnoredEvent(f"event_type {event_type} needs no invoice")
        resource = envelope.get("resource")
        if not isinstance(resource, Mapping):
            raise MalformedPayload("resource is missing or not an object")
        decrypted = _decrypt(resource, _apiv3_keys(secrets))
        if not isinstance(decrypted, Mapping):
            raise MalformedPayload("resource plaintext is not a JSON object")
        created = _time(envelope.get("create_time"))
        if event_type == PAID_EVENT:
            return _paid(event_id, event_type, decrypted, created)
        return _refunded(event_id, event_type, decrypted, created)


def _identity(envelope: Any, decrypted: Any) -> ContentIdentity:
    """What identifies the order of a signed notification that cannot be used (best effort: the order
    id is inside the encrypted resource)."""
    env = envelope if isinstance(envelope, Mapping) else {}
    res = decrypted if isinstance(decrypted, Mapping) else {}
    kinds = {PAID_EVENT: EventKind.PAID.value, REFUND_EVENT: EventKind.REFUNDED.value}
    event_type = env.get("event_type")
    return ContentIdentity(
        event_id=plain_id(env.get("id")),
        kind=kinds.get(event_type) if isinstance(event_type, str) else None,
        order_id=plain_id(res.get("out_trade_no")),
        refund_id=plain_id(res.get("out_refund_no") or res.get("refund_id")),
    )


def reply(outcome: Outcome, *, order_key: str = "", status: str = "", detail: Mapping[str, Any] | None = None) -> Reply:
    """WeChat Pay wants HTTP 200 (or 204); any 2xx stops its retries. Failures are answered by the caller."""
    del outcome, order_key, status, detail  # every accepted outcome gets the same acknowledgement
    return json_reply(200, {"code": "SUCCESS", "message": "成功"})
