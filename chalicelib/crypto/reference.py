"""The independent second implementation: the fast path's functions, computed by gmssl (pure Python).

Nothing in production calls this module. It exists so tests can check the OpenSSL-backed fast path
(``chalicelib.crypto.primitives``) against code that shares none of its internals — each side
decrypts the other's output, hashes and MACs must agree — and so the benchmark can show what the fast
path buys. Same signatures, same errors. HMAC is built here from gmssl's SM3 by the RFC 2104 recipe;
SM4 uses gmssl's block function with its PKCS#7 padding on the way in and this package's strict
unpadding on the way out (gmssl's unpadding does not check the padding bytes).
"""

from __future__ import annotations

import hmac as _std_hmac

from gmssl import sm3 as _gm_sm3
from gmssl import sm4 as _gm_sm4

from chalicelib.crypto.padding import BLOCK_SIZE, CryptoError, pkcs7_unpad

KEY_SIZE = 16
_HMAC_BLOCK = 64
_NO_PADDING = -1  # any value other than gmssl's PKCS7 (0) / ZERO (1) leaves the data as is


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise CryptoError(f"SM4 key must be {KEY_SIZE} bytes")


def _check_iv(iv: bytes) -> None:
    if not isinstance(iv, bytes) or len(iv) != BLOCK_SIZE:
        raise CryptoError(f"SM4 IV must be {BLOCK_SIZE} bytes")


def _check_ciphertext(ciphertext: bytes) -> None:
    if not ciphertext or len(ciphertext) % BLOCK_SIZE:
        raise CryptoError(f"SM4 ciphertext must be a non-empty multiple of {BLOCK_SIZE} bytes, got {len(ciphertext)}")


def _cipher(key: bytes, mode: int, padding_mode: int) -> _gm_sm4.CryptSM4:
    c = _gm_sm4.CryptSM4(mode=mode, padding_mode=padding_mode)
    c.set_key(key, mode)
    return c


def sm4_ecb_encrypt(key: bytes, plaintext: bytes) -> bytes:
    _check_key(key)
    out: bytes = _cipher(key, _gm_sm4.SM4_ENCRYPT, _gm_sm4.PKCS7).crypt_ecb(plaintext)
    return out


def sm4_ecb_decrypt(key: bytes, ciphertext: bytes) -> bytes:
    _check_key(key)
    _check_ciphertext(ciphertext)
    padded: bytes = _cipher(key, _gm_sm4.SM4_DECRYPT, _NO_PADDING).crypt_ecb(ciphertext)
    return pkcs7_unpad(padded)


def sm4_cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    _check_key(key)
    _check_iv(iv)
    out: bytes = _cipher(key, _gm_sm4.SM4_ENCRYPT, _gm_sm4.PKCS7).crypt_cbc(iv, plaintext)
    return out


def sm4_cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    _check_key(key)
    _check_iv(iv)
    _check_ciphertext(ciphertext)
    # gmssl's CBC decryption always applies its unchecked unpadding; run the block function and the
    # chaining here instead so bad padding is detected.
    c = _cipher(key, _gm_sm4.SM4_DECRYPT, _NO_PADDING)
    out = bytearray()
    prev = iv
    for i in range(0, len(ciphertext), BLOCK_SIZE):
        block = ciphertext[i : i + BLOCK_SIZE]
        plain: bytes = c.crypt_ecb(block)
        out += bytes(a ^ b for a, b in zip(plain, prev, strict=True))
        prev = block
    return pkcs7_unpad(bytes(out))


def sm3(data: bytes) -> bytes:
    digest: str = _gm_sm3.sm3_hash(list(data))  # sm3_hash appends to the list it is given
    return bytes.fromhex(digest)


def hmac_sm3(key: bytes, data: bytes) -> bytes:
    if len(key) > _HMAC_BLOCK:
        key = sm3(key)
    key = key.ljust(_HMAC_BLOCK, b"\x00")
    inner = sm3(bytes(b ^ 0x36 for b in key) + data)
    return sm3(bytes(b ^ 0x5C for b in key) + inner)


def hmac_sm3_verify(key: bytes, data: bytes, mac: bytes) -> bool:
    return _std_hmac.compare_digest(hmac_sm3(key, data), mac)
