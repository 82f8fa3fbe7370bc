"""SM2 signatures (GB/T 32918, SM3 with the Z value of the default user id) on gmssl.

Owns key-pair generation, signing and verification. Keys are hex strings (or raw bytes) handed in by
the caller: the private key is 64 hex characters, the public key 128 (x || y, no ``04`` prefix).
The per-signature nonce K is drawn from :mod:`secrets` (gmssl's own default uses :mod:`random`, which
is not a cryptographic generator and would leak the private key), and gmssl is given the public key
after construction because its constructor strips a leading ``04`` with ``str.lstrip``, which also
eats the first digits of a key whose x coordinate begins with ``0``/``4``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from gmssl import sm2 as _gm_sm2

from chalicelib.crypto.padding import CryptoError

#: The order n of the SM2 recommended curve.
CURVE_ORDER = int(_gm_sm2.default_ecc_table["n"], 16)
_HEX = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True)
class Sm2KeyPair:
    """A generated key pair. ``repr`` shows the public key only."""

    private_key: str = field(repr=False)
    public_key: str


def _hex(value: str | bytes, size: int, what: str) -> str:
    text = value.hex() if isinstance(value, bytes) else value
    if len(text) != size * 2 or not set(text) <= _HEX:
        raise CryptoError(f"SM2 {what} must be {size} bytes ({size * 2} hex characters)")
    return text.lower()


def _crypt(private_key: str | None, public_key: str) -> _gm_sm2.CryptSM2:
    c = _gm_sm2.CryptSM2(private_key=private_key, public_key="")
    c.public_key = public_key
    return c


def public_key_from_private(private_key: str | bytes) -> str:
    """Derive the public key (128 hex characters) of a private key."""
    d = _hex(private_key, 32, "private key")
    k = int(d, 16)
    if not 1 <= k <= CURVE_ORDER - 2:
        raise CryptoError("SM2 private key out of range")
    c = _crypt(d, "")
    point: str = c._kg(k, c.ecc_table["g"])
    return point.lower()


def generate_keypair() -> Sm2KeyPair:
    """A fresh key pair; the private scalar is uniform in [1, n-2]."""
    d = secrets.randbelow(CURVE_ORDER - 2) + 1
    private_key = f"{d:064x}"
    return Sm2KeyPair(private_key=private_key, public_key=public_key_from_private(private_key))


def sign(private_key: str | bytes, public_key: str | bytes, message: bytes) -> str:
    """Sign ``message`` (SM3 with Z); returns r || s as 128 lower-case hex characters."""
    d = _hex(private_key, 32, "private key")
    pub = _hex(public_key, 64, "public key")
    c = _crypt(d, pub)
    while True:
        k = f"{secrets.randbelow(CURVE_ORDER - 1) + 1:064x}"
        signature: str | None = c.sign_with_sm3(message, k)
        if signature is not None:  # None only for a degenerate k (r = 0, r + k = n or s = 0): draw again
            return signature


def verify(public_key: str | bytes, message: bytes, signature: str) -> bool:
    """True when ``signature`` (r || s hex) is valid for ``message`` under ``public_key``."""
    pub = _hex(public_key, 64, "public key")
    if len(signature) != 128 or not set(signature) <= _HEX:
        return False
    r, s = int(signature[:64], 16), int(signature[64:], 16)
    if not (1 <= r < CURVE_ORDER and 1 <= s < CURVE_ORDER):
        return False
    try:
        return bool(_crypt(None, pub).verify_with_sm3(signature, message))
    except (ValueError, ArithmeticError):
        return False
