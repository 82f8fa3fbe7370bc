"""PKCS#7 padding for 16-byte block ciphers, and the crypto package's error types.

Unpadding is strict: every padding byte is checked, so a wrong key or a corrupted ciphertext is
reported as :class:`PaddingError` instead of returning a silently truncated plaintext (gmssl's own
unpadding trusts the last byte blindly). Error messages name what is wrong, never the data or key.
"""

from __future__ import annotations

from chalicelib.domain.errors import EInvoiceError

BLOCK_SIZE = 16


class CryptoError(EInvoiceError, ValueError):
    """A key, IV, ciphertext or signature has the wrong shape. Never carries key material."""

    code = "crypto_error"


class PaddingError(CryptoError):
    """Decrypted data does not end in valid PKCS#7 padding (wrong key or corrupted ciphertext)."""


def pkcs7_pad(data: bytes, block_size: int = BLOCK_SIZE) -> bytes:
    """Append 1..block_size bytes, each equal to the number of bytes added."""
    n = block_size - len(data) % block_size
    return data + bytes([n]) * n


def pkcs7_unpad(data: bytes, block_size: int = BLOCK_SIZE) -> bytes:
    """Remove PKCS#7 padding, rejecting anything that is not exactly valid padding."""
    if not data or len(data) % block_size:
        raise PaddingError(f"padded data must be a non-empty multiple of {block_size} bytes, got {len(data)}")
    n = data[-1]
    if not 1 <= n <= block_size:
        raise PaddingError("invalid PKCS#7 padding length byte")
    if data[-n:] != bytes([n]) * n:
        raise PaddingError("invalid PKCS#7 padding bytes")
    return data[:-n]
