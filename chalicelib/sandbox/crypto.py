"""The sandbox's own cryptography, built on gmssl only (independent of ``chalicelib.crypto``).

SM4-ECB with PKCS#7 padding (padding done and checked here, not by gmssl, so a wrong key or a
corrupted body is detected instead of silently producing garbage), SM3 and HMAC-SM3 (RFC 2104 with a
64-byte block), and the STA canonical string of ``docs/tax-protocol.md``.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from gmssl import func, sm3, sm4

_BLOCK = 16
_HMAC_BLOCK = 64
_NO_PADDING = 99  # any value other than gmssl's PKCS7 (0) / ZERO (1): gmssl then leaves the data alone


class DecryptError(ValueError):
    """The body is not valid Base64, not a whole number of blocks, or its padding is wrong."""


def sm3_digest(data: bytes) -> bytes:
    return bytes.fromhex(sm3.sm3_hash(func.bytes_to_list(data)))


def sm3_hex(data: bytes) -> str:
    return str(sm3.sm3_hash(func.bytes_to_list(data)))


def hmac_sm3(key: bytes, message: bytes) -> bytes:
    """HMAC per RFC 2104 over SM3 (block 64 bytes, digest 32 bytes)."""
    if len(key) > _HMAC_BLOCK:
        key = sm3_digest(key)
    key = key.ljust(_HMAC_BLOCK, b"\x00")
    ipad = bytes(b ^ 0x36 for b in key)
    opad = bytes(b ^ 0x5C for b in key)
    return sm3_digest(opad + sm3_digest(ipad + message))


def _cipher(key: bytes, mode: int) -> sm4.CryptSM4:
    if len(key) != _BLOCK:
        raise ValueError("SM4 key must be 16 bytes")
    c: sm4.CryptSM4 = sm4.CryptSM4(mode, padding_mode=_NO_PADDING)
    c.set_key(key, mode)
    return c


def sm4_encrypt_b64(key: bytes, plaintext: bytes) -> str:
    pad = _BLOCK - len(plaintext) % _BLOCK
    padded = plaintext + bytes([pad]) * pad
    return base64.b64encode(_cipher(key, sm4.SM4_ENCRYPT).crypt_ecb(padded)).decode("ascii")


def sm4_decrypt_b64(key: bytes, text: str | bytes) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecryptError("body is not Base64") from exc
    if not raw or len(raw) % _BLOCK:
        raise DecryptError("ciphertext is not a whole number of blocks")
    plain: bytes = _cipher(key, sm4.SM4_DECRYPT).crypt_ecb(raw)
    pad = plain[-1]
    if not 1 <= pad <= _BLOCK or plain[-pad:] != bytes([pad]) * pad:
        raise DecryptError("bad PKCS#7 padding")
    return plain[:-pad]


def sta_canonical(app_id: str, fwbm: str, timestamp: str, nonce: str, body: bytes) -> str:
    return "\n".join([app_id, fwbm, timestamp, nonce, sm3_hex(body)])


def sta_signature(sign_key: str, app_id: str, fwbm: str, timestamp: str, nonce: str, body: bytes) -> str:  # noqa: PLR0917
    canonical = sta_canonical(app_id, fwbm, timestamp, nonce, body)
    return hmac_sm3(sign_key.encode("utf-8"), canonical.encode("utf-8")).hex()


def nuonuo_signature(  # noqa: PLR0917 - the order of the signed string
    app_key: str, app_secret: str, senid: str, nonce: str, timestamp: str, body: bytes
) -> str:
    """Base64(HMAC-SHA1(appSecret, "a=services&l=v1&p=open&k=..&i=..&n=..&t=..&f={body}"))."""
    prefix = f"a=services&l=v1&p=open&k={app_key}&i={senid}&n={nonce}&t={timestamp}&f=".encode()
    mac = hmac.new(app_secret.encode("utf-8"), prefix + body, "sha1").digest()
    return base64.b64encode(mac).decode("ascii")


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
