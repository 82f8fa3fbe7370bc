"""The signed daily manifest of one store: what the archive held for a day, chained to the day before.

A manifest is one JSON object (``{store}/manifests/{yyyy}/{mm}/{dd}.json``)::

    {"version": 1, "store": "...", "day": "YYYY-MM-DD", "created_at": "...",
     "objects": [{"key": "...", "size": n, "sm3": "hex"}, ...],     # ascending by key
     "merkle_root": "hex",                                          # chalicelib/audit/merkle.py
     "previous": {"day": "YYYY-MM-DD", "sm3": "hex"} | null,        # SM3 of the previous manifest's bytes
     "hash": "SM3", "signature_algorithm": "SM2 (GB/T 32918, SM3 with Z of the default id)",
     "public_key": "128 hex",
     "signature": "128 hex"}                                        # SM2 over the signed bytes

The signed bytes are the manifest without ``signature``, as canonical JSON (keys sorted, no spaces,
UTF-8); the SM2 signature (SM3 with Z, the default user id) is over ``SIGNED_PREFIX || SM3(signed
bytes)`` — a 32-byte digest behind a domain tag, so a verifier hashes the manifest once with the fast
SM3 and the signature scheme's own SM3 runs over 55 bytes whatever the day's size. The object as
stored is the canonical JSON of the whole manifest, so its SM3 — the next day's ``previous.sm3`` — is
reproducible from the parsed manifest too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from chalicelib.audit.keys import manifest_key
from chalicelib.audit.merkle import root, sm3
from chalicelib.crypto import sm2

VERSION = 1
#: Domain separation of the signed message: a manifest signature can never be taken for another one.
SIGNED_PREFIX = b"einvoice-manifest-v1\x00"
SIGNATURE_ALGORITHM = "SM2 (GB/T 32918, SM3 with Z of the default id)"


@dataclass(frozen=True)
class Entry:
    key: str
    size: int
    sm3: str  # hex


@dataclass(frozen=True)
class Link:
    day: date
    sm3: str  # hex of the previous manifest's bytes


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def merkle_root(entries: Sequence[Entry]) -> str:
    return root([(e.key, bytes.fromhex(e.sm3)) for e in entries]).hex()


def build(
    *,
    store: str,
    day: date,
    entries: Sequence[Entry],
    previous: Link | None,
    private_key: str,
    public_key: str,
    created_at: datetime,
) -> bytes:
    """The manifest's bytes, signed."""
    ordered = sorted(entries, key=lambda e: e.key.encode("utf-8"))
    body: dict[str, Any] = {
        "version": VERSION,
        "store": store,
        "day": day.isoformat(),
        "created_at": created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "objects": [{"key": e.key, "size": e.size, "sm3": e.sm3} for e in ordered],
        "merkle_root": merkle_root(ordered),
        "previous": None if previous is None else {"day": previous.day.isoformat(), "sm3": previous.sm3},
        "hash": "SM3",
        "signature_algorithm": SIGNATURE_ALGORITHM,
        "public_key": public_key,
    }
    body["signature"] = sm2.sign(private_key, public_key, signed_message(canonical(body)))
    return canonical(body)


def signed_message(signed_bytes: bytes) -> bytes:
    """What the SM2 signature covers: the domain tag and the SM3 of the signed bytes."""
    return SIGNED_PREFIX + sm3(signed_bytes)


def digest(blob: bytes) -> str:
    """The manifest's digest as the next manifest's ``previous.sm3``."""
    return sm3(blob).hex()


@dataclass(frozen=True)
class Manifest:
    store: str
    day: date
    entries: tuple[Entry, ...]
    merkle_root: str
    previous: Link | None
    public_key: str
    signature: str
    signed_bytes: bytes
    raw: bytes

    @property
    def key(self) -> str:
        return manifest_key(self.store, self.day)

    @property
    def sm3(self) -> str:
        return digest(self.raw)

    def signature_ok(self, public_key: str) -> bool:
        return sm2.verify(public_key, signed_message(self.signed_bytes), self.signature)


class ManifestError(ValueError):
    """A manifest that cannot be read at all (not JSON, a field missing or of the wrong type)."""


def parse(raw: bytes) -> Manifest:
    try:
        data = json.loads(raw)
        body = {k: v for k, v in data.items() if k != "signature"}
        prev = data["previous"]
        return Manifest(
            store=str(data["store"]),
            day=date.fromisoformat(data["day"]),
            entries=tuple(Entry(str(o["key"]), int(o["size"]), str(o["sm3"])) for o in data["objects"]),
            merkle_root=str(data["merkle_root"]),
            previous=None if prev is None else Link(date.fromisoformat(prev["day"]), str(prev["sm3"])),
            public_key=str(data["public_key"]),
            signature=str(data["signature"]),
            signed_bytes=canonical(body),
            raw=raw,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ManifestError(f"unreadable manifest: {exc}") from None
