"""SM2 key generation, signing and verification (gmssl with a `secrets` nonce)."""

from __future__ import annotations

import pytest

from chalicelib.crypto import sm2
from chalicelib.crypto.padding import CryptoError


@pytest.fixture(scope="module")
def keypair() -> sm2.Sm2KeyPair:
    return sm2.generate_keypair()


def test_a_signature_verifies_with_the_signers_public_key(keypair: sm2.Sm2KeyPair) -> None:
    signature = sm2.sign(keypair.private_key, keypair.public_key, "开票请求".encode())
    assert len(signature) == 128
    assert sm2.verify(keypair.public_key, "开票请求".encode(), signature)


def test_a_tampered_message_fails_verification(keypair: sm2.Sm2KeyPair) -> None:
    signature = sm2.sign(keypair.private_key, keypair.public_key, b"amount=100.00")
    assert not sm2.verify(keypair.public_key, b"amount=900.00", signature)


def test_a_tampered_signature_fails_verification(keypair: sm2.Sm2KeyPair) -> None:
    signature = sm2.sign(keypair.private_key, keypair.public_key, b"message")
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    assert not sm2.verify(keypair.public_key, b"message", flipped)
    assert not sm2.verify(keypair.public_key, b"message", "zz" * 64)
    assert not sm2.verify(keypair.public_key, b"message", signature[:100])


def test_another_key_does_not_verify(keypair: sm2.Sm2KeyPair) -> None:
    other = sm2.generate_keypair()
    signature = sm2.sign(keypair.private_key, keypair.public_key, b"message")
    assert not sm2.verify(other.public_key, b"message", signature)


def test_signing_twice_uses_fresh_nonces(keypair: sm2.Sm2KeyPair) -> None:
    first = sm2.sign(keypair.private_key, keypair.public_key, b"same message")
    second = sm2.sign(keypair.private_key, keypair.public_key, b"same message")
    assert first[:64] != second[:64]  # r differs: k was not reused
    assert sm2.verify(keypair.public_key, b"same message", second)


def test_the_nonce_comes_from_secrets(monkeypatch: pytest.MonkeyPatch, keypair: sm2.Sm2KeyPair) -> None:
    drawn: list[int] = []
    real = sm2.secrets.randbelow

    def spy(n: int) -> int:
        value = real(n)
        drawn.append(value)
        return value

    monkeypatch.setattr(sm2.secrets, "randbelow", spy)
    sm2.sign(keypair.private_key, keypair.public_key, b"m")
    assert drawn and all(0 <= v < sm2.CURVE_ORDER for v in drawn)


def test_public_key_derivation_matches_generation(keypair: sm2.Sm2KeyPair) -> None:
    assert sm2.public_key_from_private(keypair.private_key) == keypair.public_key
    assert sm2.public_key_from_private(bytes.fromhex(keypair.private_key)) == keypair.public_key


def test_a_public_key_whose_x_starts_with_04_still_works() -> None:
    # gmssl's constructor would strip the leading "04" of such a key; the wrapper must not let it.
    private_key = "0000000000000000000000000000000000000000000000000000000000000000"
    for d in range(1, 5000):
        private_key = f"{d:064x}"
        if sm2.public_key_from_private(private_key).startswith("04"):
            break
    else:  # pragma: no cover - the search space is large enough in practice
        pytest.fail("no key with x starting 04 found")
    public_key = sm2.public_key_from_private(private_key)
    signature = sm2.sign(private_key, public_key, b"m")
    assert sm2.verify(public_key, b"m", signature)


def test_keypair_repr_hides_the_private_key(keypair: sm2.Sm2KeyPair) -> None:
    assert keypair.private_key not in repr(keypair)
    assert keypair.public_key in repr(keypair)


def test_malformed_keys_are_rejected_without_echoing_them() -> None:
    with pytest.raises(CryptoError) as info:
        sm2.sign("deadbeef", "00" * 64, b"m")
    assert "deadbeef" not in str(info.value)
    with pytest.raises(CryptoError):
        sm2.public_key_from_private("00" * 32)  # zero is not a valid scalar
