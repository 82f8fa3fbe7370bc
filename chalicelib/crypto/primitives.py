"""The fast path: SM4-ECB/CBC, SM3 and HMAC-SM3 on ``cryptography`` (OpenSSL), bytes in, bytes out.

This is what the protocol code calls. Encryption pads with PKCS#7 and decryption unpads strictly
(:class:`~chalicelib.crypto.padding.PaddingError` on bad padding). ``chalicelib.crypto.reference``
implements the same signatures on gmssl; the tests require the two to agree on every input.
"""

from __future__ import annotations

import hmac as _std_hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as _crypto_hmac
from cryptography.hazmat.primitives import padding as _padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from chalicelib.crypto.padding import BLOCK_SIZE, CryptoError, PaddingError

KEY_SIZE = 16


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise CryptoError(f"SM4 key must be {KEY_SIZE} bytes")


def _check_iv(iv: bytes) -> None:
    if not isinstance(iv, bytes) or len(iv) != BLOCK_SIZE:
        raise CryptoError(f"SM4 IV must be {BLOCK_SIZE} bytes")


def _check_ciphertext(ciphertext: bytes) -> None:
    if not ciphertext or len(ciphertext) % BLOCK_SIZE:
        raise CryptoError(f"SM4 ciphertext must be a non-empty multiple of {BLOCK_SIZE} bytes, got {len(ciphertext)}")


def _pad(data: bytes) -> bytes:
    padder = _padding.PKCS7(BLOCK_SIZE * 8).padder()
    return padder.update(data) + padder.finalize()


def _unpad(data: bytes) -> bytes:
    unpadder = _padding.PKCS7(BLOCK_SIZE * 8).unpadder()
    try:
        return unpadder.update(data) + unpadder.finalize()
    except ValueError:
        raise PaddingError("invalid PKCS#7 padding") from None


def _run(cipher: Cipher[modes.ECB] | Cipher[modes.CBC], data: bytes, *, encrypt: bool) -> bytes:
    ctx = cipher.encryptor() if encrypt else cipher.decryptor()
    return ctx.update(data) + ctx.finalize()


def sm4_ecb_encrypt(key: bytes, plaintext: bytes) -> bytes:
    """SM4-ECB of PKCS#7(plaintext)."""
    _check_key(key)
    return _run(Cipher(algorithms.SM4(key), modes.ECB()), _pad(plaintext), encrypt=True)  # noqa: S305 (ECB is the protocol's choice)


def sm4_ecb_decrypt(key: bytes, ciphertext: bytes) -> bytes:
    """Inverse of :func:`sm4_ecb_encrypt`; raises PaddingError when the padding is not valid."""
    _check_key(key)
    _check_ciphertext(ciphertext)
    return _unpad(_run(Cipher(algorithms.SM4(key), modes.ECB()), ciphertext, encrypt=False))  # noqa: S305


def sm4_cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """SM4-CBC of PKCS#7(plaintext). The caller supplies a fresh random IV."""
    _check_key(key)
    _check_iv(iv)
    return _run(Cipher(algorithms.SM4(key), modes.CBC(iv)), _pad(plaintext), encrypt=True)


def sm4_cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """Inverse of :func:`sm4_cbc_encrypt`; raises PaddingError when the padding is not valid."""
    _check_key(key)
    _check_iv(iv)
    _check_ciphertext(ciphertext)
    return _unpad(_run(Cipher(algorithms.SM4(key), modes.CBC(iv)), ciphertext, encrypt=False))


def sm3(data: bytes) -> bytes:
    """The 32-byte SM3 digest."""
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


def hmac_sm3(key: bytes, data: bytes) -> bytes:
    """HMAC (RFC 2104) with SM3: 32 bytes."""
    h = _crypto_hmac.HMAC(key, hashes.SM3())
    h.update(data)
    return h.finalize()


def hmac_sm3_verify(key: bytes, data: bytes, mac: bytes) -> bool:
    """Constant-time check of an HMAC-SM3 tag."""
    return _std_hmac.compare_digest(hmac_sm3(key, data), mac)
