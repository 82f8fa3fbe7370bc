"""Chinese national cryptography (SM2 / SM3 / SM4) for the tax protocols, from bytes to bytes.

This package owns the primitives the tax layer needs and nothing else: SM4 (ECB and CBC with strict
PKCS#7), SM3 and HMAC-SM3 on the fast path (``primitives``, backed by ``cryptography``/OpenSSL), the
same functions implemented independently on ``gmssl`` (``reference``, used to cross-check the fast
path in tests and benchmarks), and SM2 signatures (``sm2``). Keys are always passed in as
``bytes``/``str``: the crypto never fetches, logs or stores secret material, and its errors never
contain it.
"""

from chalicelib.crypto.padding import CryptoError, PaddingError, pkcs7_pad, pkcs7_unpad
from chalicelib.crypto.primitives import (
    hmac_sm3,
    hmac_sm3_verify,
    sm3,
    sm4_cbc_decrypt,
    sm4_cbc_encrypt,
    sm4_ecb_decrypt,
    sm4_ecb_encrypt,
)

__all__ = [
    "CryptoError",
    "PaddingError",
    "hmac_sm3",
    "hmac_sm3_verify",
    "pkcs7_pad",
    "pkcs7_unpad",
    "sm3",
    "sm4_cbc_decrypt",
    "sm4_cbc_encrypt",
    "sm4_ecb_decrypt",
    "sm4_ecb_encrypt",
]
