"""Known-answer and cross-implementation tests for SM4, SM3 and HMAC-SM3 (fast path vs gmssl)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.crypto import padding, primitives, reference
from chalicelib.crypto.padding import CryptoError, PaddingError

IMPLEMENTATIONS = [pytest.param(primitives, id="fast"), pytest.param(reference, id="gmssl")]

# GB/T 32907-2016 appendix A.1: key = plaintext = 0123456789abcdeffedcba9876543210.
SM4_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")
SM4_BLOCK_CIPHERTEXT = bytes.fromhex("681edf34d206965e86b3e94f536e4246")
# GB/T 32905-2016 appendix A: SM3("abc") and SM3("abcd" * 16).
SM3_ABC = bytes.fromhex("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")
SM3_ABCD16 = bytes.fromhex("debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732")
# HMAC-SM3 over the RFC 4231 case-2 inputs, computed by both implementations and pinned here.
HMAC_KEY = b"Jefe"
HMAC_DATA = b"what do ya want for nothing?"
HMAC_EXPECTED = bytes.fromhex("2e87f1d16862e6d964b50a5200bf2b10b764faa9680a296a2405f24bec39f882")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_sm4_ecb_matches_the_gbt32907_block_vector(impl: object) -> None:
    ciphertext = impl.sm4_ecb_encrypt(SM4_KEY, SM4_KEY)  # type: ignore[attr-defined]
    # One full block of plaintext: the first ciphertext block is the raw SM4 vector, the second
    # is a full padding block.
    assert ciphertext[:16] == SM4_BLOCK_CIPHERTEXT
    assert len(ciphertext) == 32
    assert impl.sm4_ecb_decrypt(SM4_KEY, ciphertext) == SM4_KEY  # type: ignore[attr-defined]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_sm3_matches_the_gbt32905_vectors(impl: object) -> None:
    assert impl.sm3(b"abc") == SM3_ABC  # type: ignore[attr-defined]
    assert impl.sm3(b"abcd" * 16) == SM3_ABCD16  # type: ignore[attr-defined]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_hmac_sm3_matches_the_pinned_vector(impl: object) -> None:
    assert impl.hmac_sm3(HMAC_KEY, HMAC_DATA) == HMAC_EXPECTED  # type: ignore[attr-defined]
    assert impl.hmac_sm3_verify(HMAC_KEY, HMAC_DATA, HMAC_EXPECTED)  # type: ignore[attr-defined]
    assert not impl.hmac_sm3_verify(HMAC_KEY, HMAC_DATA + b"!", HMAC_EXPECTED)  # type: ignore[attr-defined]


def test_hmac_sm3_with_a_key_longer_than_the_block_agrees_between_implementations() -> None:
    key = bytes(range(100))
    assert primitives.hmac_sm3(key, b"data") == reference.hmac_sm3(key, b"data")
    assert primitives.hmac_sm3(key, b"data") != primitives.hmac_sm3(key[:64], b"data")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_sm4_decrypt_with_the_wrong_key_is_a_padding_error(impl: object) -> None:
    ciphertext = impl.sm4_ecb_encrypt(SM4_KEY, b"invoice payload")  # type: ignore[attr-defined]
    wrong = bytes(16)
    # A wrong key yields random-looking blocks; valid padding by chance is possible, so pin a key
    # known to give invalid padding here.
    with pytest.raises(PaddingError):
        impl.sm4_ecb_decrypt(wrong, ciphertext)  # type: ignore[attr-defined]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_sm4_rejects_a_key_of_the_wrong_length_without_echoing_it(impl: object) -> None:
    with pytest.raises(CryptoError) as info:
        impl.sm4_ecb_encrypt(b"secret-key-15byt"[:15], b"x")  # type: ignore[attr-defined]
    assert "secret" not in str(info.value)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("ciphertext", [b"", b"\x00" * 15, b"\x00" * 17])
def test_sm4_rejects_ciphertext_that_is_not_whole_blocks(impl: object, ciphertext: bytes) -> None:
    with pytest.raises(CryptoError):
        impl.sm4_ecb_decrypt(SM4_KEY, ciphertext)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "padded",
    [
        b"A" * 15 + b"\x00",  # length byte 0
        b"A" * 15 + b"\x11",  # length byte > block
        b"A" * 13 + b"\x01\x02\x03",  # inconsistent padding bytes
        b"A" * 14 + b"\x01\x02",
    ],
)
def test_pkcs7_unpad_rejects_bad_padding(padded: bytes) -> None:
    with pytest.raises(PaddingError):
        padding.pkcs7_unpad(padded)


def test_pkcs7_pad_always_adds_between_one_and_sixteen_bytes() -> None:
    assert padding.pkcs7_pad(b"") == b"\x10" * 16
    assert padding.pkcs7_pad(b"A" * 15) == b"A" * 15 + b"\x01"
    assert padding.pkcs7_pad(b"A" * 16) == b"A" * 16 + b"\x10" * 16


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_sm4_reports_bad_padding_after_a_corrupted_last_block(impl: object) -> None:
    ciphertext = bytearray(impl.sm4_ecb_encrypt(SM4_KEY, b"0123456789"))  # type: ignore[attr-defined]
    raw = reference._cipher(SM4_KEY, 0, reference._NO_PADDING).crypt_ecb(b"B" * 16)
    ciphertext[-16:] = raw  # decrypts to "BBBB…B": last byte 0x42 is not valid padding
    with pytest.raises(PaddingError):
        impl.sm4_ecb_decrypt(SM4_KEY, bytes(ciphertext))  # type: ignore[attr-defined]


keys = st.binary(min_size=16, max_size=16)
plaintexts = st.binary(min_size=0, max_size=200)


@settings(max_examples=40, deadline=None)
@given(key=keys, plaintext=plaintexts)
def test_sm4_ecb_each_implementation_decrypts_the_others_output(key: bytes, plaintext: bytes) -> None:
    fast = primitives.sm4_ecb_encrypt(key, plaintext)
    slow = reference.sm4_ecb_encrypt(key, plaintext)
    assert fast == slow
    assert reference.sm4_ecb_decrypt(key, fast) == plaintext
    assert primitives.sm4_ecb_decrypt(key, slow) == plaintext


@settings(max_examples=40, deadline=None)
@given(key=keys, iv=st.binary(min_size=16, max_size=16), plaintext=plaintexts)
def test_sm4_cbc_each_implementation_decrypts_the_others_output(key: bytes, iv: bytes, plaintext: bytes) -> None:
    fast = primitives.sm4_cbc_encrypt(key, iv, plaintext)
    slow = reference.sm4_cbc_encrypt(key, iv, plaintext)
    assert fast == slow
    assert reference.sm4_cbc_decrypt(key, iv, fast) == plaintext
    assert primitives.sm4_cbc_decrypt(key, iv, slow) == plaintext


@settings(max_examples=40, deadline=None)
@given(key=st.binary(max_size=100), data=st.binary(max_size=300))
def test_sm3_and_hmac_sm3_agree_between_implementations(key: bytes, data: bytes) -> None:
    assert primitives.sm3(data) == reference.sm3(data)
    assert primitives.hmac_sm3(key, data) == reference.hmac_sm3(key, data)


def test_cbc_differs_from_ecb_and_depends_on_the_iv() -> None:
    plaintext = b"A" * 32
    ecb = primitives.sm4_ecb_encrypt(SM4_KEY, plaintext)
    cbc1 = primitives.sm4_cbc_encrypt(SM4_KEY, bytes(16), plaintext)
    cbc2 = primitives.sm4_cbc_encrypt(SM4_KEY, b"\x01" * 16, plaintext)
    assert ecb[:16] == ecb[16:32]  # ECB leaks equal blocks
    assert cbc1[:16] != cbc1[16:32]
    assert cbc1 != cbc2
