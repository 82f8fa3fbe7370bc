"""The shared ground of the sample webhooks: what a sample sells (:class:`Sale`), the signed request it
becomes (:class:`SignedRequest`), a platform's own RSA key (:class:`SigningKeys`), and the encoding,
hashing, key-loading and secret-reading helpers every platform's signer uses.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from functools import cache
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from chalicelib import webhooks

PLATFORMS: tuple[str, ...] = webhooks.PLATFORMS  # every platform the gateway verifies
#: the platforms that sign with their own RSA private key (the store's secret holds the public half)
RSA_SIGNED = frozenset({"wechatpay", "alipay"})
CHINA = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class Sale:
    """What a sample event sells: one line (``sku`` of the store's catalogue, or none) for ``amount``."""

    order_id: str
    amount: Decimal
    sku: str | None = None
    name: str = "示例商品"
    buyer: dict[str, str] | None = None  # Standard Webhooks only

    @classmethod
    def of(cls, order_id: str, amount: str | Decimal, **kw: Any) -> Sale:
        return cls(order_id, Decimal(str(amount)).quantize(Decimal("0.01")), **kw)

    @property
    def fen(self) -> int:
        return int(self.amount * 100)


@dataclass(frozen=True)
class SignedRequest:
    """The exact bytes to POST to ``/webhooks/<platform>/<store_id>`` and their headers (lower case)."""

    platform: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SigningKeys:
    """A platform's own signing key (PEM, PKCS#8) and what names it: WeChat Pay's key id / serial."""

    private_pem: str
    key_id: str = ""


# --- helpers --------------------------------------------------------------------------------------
def _json(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


def _now() -> datetime:
    return datetime.now(UTC)


def china(at: datetime) -> str:
    return at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")


def _hmac_b64(secret: str | bytes, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()


def _md5_hex(*parts: bytes) -> str:
    return hashlib.md5(b"".join(parts), usedforsecurity=False).hexdigest()


@cache
def private_key(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def public_key_der(material: str) -> bytes:
    """The DER SubjectPublicKeyInfo of a PEM certificate, a PEM public key or a bare base64 public key."""
    from cryptography import x509

    text = material.strip()
    if "BEGIN CERTIFICATE" in text:
        key: Any = x509.load_pem_x509_certificate(text.encode("ascii")).public_key()
    elif "BEGIN" in text:
        key = serialization.load_pem_public_key(text.encode("ascii"))
    else:
        key = serialization.load_der_public_key(base64.b64decode("".join(text.split())))
    return bytes(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def pairs_with(private_pem: str, public_material: str) -> bool:
    """Whether ``public_material`` is the public half of ``private_pem``."""
    try:
        return public_key_der(public_material) == public_key_der(
            private_key(private_pem)
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
    except ValueError:
        return False


def first(secret: Mapping[str, Any], key: str = "secret") -> str:
    """The first value under ``key`` or ``key + 's'`` (the verifiers accept both), as the store's secret holds it."""
    plural = secret.get(key + "s")
    values = [str(v) for v in plural if v] if isinstance(plural, list) else []
    single = secret.get(key)
    if isinstance(single, str | int) and str(single):
        values.append(str(single))
    if not values:
        raise ValueError(f"the secret has no {key!r}")
    return values[0]
