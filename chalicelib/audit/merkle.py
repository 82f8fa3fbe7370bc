"""SM3 and the Merkle tree over one day's archive objects.

Hashing, with domain separation (RFC 6962's shape, SM3 for SHA-256)::

    digest(object) = SM3(object bytes as stored)
    leaf(key, d)   = SM3(0x00 || len(key) as 4 bytes big-endian || UTF-8(key) || d)
    node(l, r)     = SM3(0x01 || l || r)
    root([])       = SM3(b"")
    root([x])      = x
    root(xs)       = node(root(xs[:k]), root(xs[k:]))   k = the largest power of two < len(xs)

The leaves are in ascending order of key (UTF-8 bytes). The key is inside the leaf, so moving an
object to another name or day changes the root even when its bytes do not; the 0x00/0x01 prefixes
keep a leaf from ever being taken for a node (second-preimage).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes

LEAF, NODE = b"\x00", b"\x01"


def sm3(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


class Sm3Stream:
    """SM3 over data given in pieces (a file read in chunks)."""

    def __init__(self) -> None:
        self._h = hashes.Hash(hashes.SM3())

    def update(self, data: bytes) -> None:
        self._h.update(data)

    def hexdigest(self) -> str:
        return self._h.finalize().hex()


def leaf(key: str, digest: bytes) -> bytes:
    name = key.encode("utf-8")
    return sm3(LEAF + len(name).to_bytes(4, "big") + name + digest)


def node(left: bytes, right: bytes) -> bytes:
    return sm3(NODE + left + right)


def _root(hashes_: Sequence[bytes]) -> bytes:
    n = len(hashes_)
    if n == 1:
        return hashes_[0]
    k = 1 << ((n - 1).bit_length() - 1)
    return node(_root(hashes_[:k]), _root(hashes_[k:]))


def root(entries: Sequence[tuple[str, bytes]]) -> bytes:
    """The root over (key, object digest) pairs, sorted here by key."""
    if not entries:
        return sm3(b"")
    ordered = sorted(entries, key=lambda e: e[0].encode("utf-8"))
    return _root([leaf(k, d) for k, d in ordered])
