"""The customer's invoice link: an unguessable token, stored only as its SHA-256, expiring, revocable.

``Links.issue`` makes a token of :data:`TOKEN_BYTES` random bytes from :mod:`secrets` (URL-safe
base64, no padding: 32 characters for 192 bits) and stores a :class:`LinkRecord` keyed by
:func:`token_hash` — the token itself is never stored, logged or returned again: whoever reads the
table cannot open a link. ``resolve`` answers a token with the link (:class:`LinkView`) or why not
(:class:`LinkRefusal`: ``unknown`` → 404, ``expired`` / ``revoked`` → 410). A token that is not of
the issued shape is ``unknown`` without a read. ``revoke`` takes a token or an order key (every link
of that order). The delivery worker calls ``issue`` once per delivery; each call makes a new link.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from chalicelib.domain.order_keys import parse_order_key

#: Random bytes per token: 192 bits (the issue asks for at least 128).
TOKEN_BYTES = 24
#: The shape of an issued token: URL-safe base64 without padding.
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32}")
#: The path of a link page; the URL is ``public_base_url + LINK_PATH + token``.
LINK_PATH = "/i/"
DAY_SECONDS = 86_400
#: The title form's token is valid for the hour it was shown in and the next one.
FORM_WINDOW_SECONDS = 3600


def token_hash(token: str) -> str:
    """What the store keeps of a token: SHA-256, hex."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


class RefusalReason(StrEnum):
    UNKNOWN = "unknown"  # never issued, mistyped or forged: 404
    EXPIRED = "expired"  # 410
    REVOKED = "revoked"  # 410

    @property
    def http_status(self) -> int:
        return 404 if self is RefusalReason.UNKNOWN else 410


@dataclass(frozen=True)
class LinkRecord:
    """One link as stored (no token: its hash)."""

    token_hash: str
    order_key: str
    store_id: str
    issued_at: float
    expires_at: float
    #: A random key of this link's own: the title form's token is an HMAC under it (never shown).
    form_key: str
    revoked_at: float | None = None

    def state(self, now: float) -> RefusalReason | None:
        if self.revoked_at is not None:
            return RefusalReason.REVOKED
        if now >= self.expires_at:
            return RefusalReason.EXPIRED
        return None


@dataclass(frozen=True)
class IssuedLink:
    token: str
    url: str
    expires_at: float


@dataclass(frozen=True)
class LinkView:
    """A live link: what the page may show (the order key is looked up by the page service)."""

    token_hash: str
    order_key: str
    store_id: str
    expires_at: float
    form_key: str

    def form_token(self, now: float, *, window: int = 0) -> str:
        """The title form's CSRF token: tied to this link and to the hour (``window`` back)."""
        slot = int(now // FORM_WINDOW_SECONDS) - window
        message = f"title|{self.token_hash}|{slot}".encode()
        return hmac.new(bytes.fromhex(self.form_key), message, hashlib.sha256).hexdigest()[:32]

    def form_token_ok(self, candidate: str, now: float) -> bool:
        return any(hmac.compare_digest(candidate, self.form_token(now, window=w)) for w in (0, 1))


@dataclass(frozen=True)
class LinkRefusal:
    reason: RefusalReason

    @property
    def http_status(self) -> int:
        return self.reason.http_status


class LinkStorePort(Protocol):
    """Where links are kept (DynamoDB: ``chalicelib/adapters/links.py``; a fake in tests)."""

    def put(self, link: LinkRecord) -> bool:
        """Store a new link; False when a link with that hash exists (nothing written)."""
        ...

    def get(self, token_hash: str) -> LinkRecord | None: ...

    def of_order(self, order_key: str) -> list[LinkRecord]:
        """Every link of ``order_key``, oldest first."""
        ...

    def revoke(self, token_hash: str, *, now: float) -> bool:
        """Mark the link revoked; False when there is no such link or it was revoked already."""
        ...


class Links:
    def __init__(self, store: LinkStorePort, *, base_url: str) -> None:
        self.store = store
        self.base_url = base_url.rstrip("/")

    def url(self, token: str) -> str:
        return f"{self.base_url}{LINK_PATH}{token}"

    def issue(self, store_id: str, order_key: str, *, now: float, ttl_days: int) -> IssuedLink:
        """A new link to ``order_key``'s invoice page, live for ``ttl_days`` (the store's
        ``delivery.link_ttl_days``). The token is returned once and never kept."""
        if ttl_days < 1:
            raise ValueError("a link lives at least one day")
        if parse_order_key(order_key).store_id != store_id:
            raise ValueError(f"order {order_key!r} is not of store {store_id!r}")
        expires_at = now + ttl_days * DAY_SECONDS
        while True:  # a collision of 192 random bits does not happen; the loop only makes put() total
            token = secrets.token_urlsafe(TOKEN_BYTES)
            record = LinkRecord(
                token_hash=token_hash(token),
                order_key=order_key,
                store_id=store_id,
                issued_at=now,
                expires_at=expires_at,
                form_key=secrets.token_hex(32),
            )
            if self.store.put(record):
                return IssuedLink(token=token, url=self.url(token), expires_at=expires_at)

    def resolve(self, token: str, now: float) -> LinkView | LinkRefusal:
        if not TOKEN_RE.fullmatch(token):
            return LinkRefusal(RefusalReason.UNKNOWN)
        record = self.store.get(token_hash(token))
        if record is None:
            return LinkRefusal(RefusalReason.UNKNOWN)
        refused = record.state(now)
        if refused is not None:
            return LinkRefusal(refused)
        return LinkView(record.token_hash, record.order_key, record.store_id, record.expires_at, record.form_key)

    def revoke(self, token_or_order_key: str, *, now: float) -> int:
        """Revoke one link (a token) or every live link of an order (an order key); how many."""
        if is_order_key(token_or_order_key):
            hashes: Sequence[str] = [r.token_hash for r in self.store.of_order(token_or_order_key)]
        elif TOKEN_RE.fullmatch(token_or_order_key):
            hashes = [token_hash(token_or_order_key)]
        else:
            raise ValueError("neither a link token nor an order key (store:platform:order_id)")
        return sum(1 for h in hashes if self.store.revoke(h, now=now))

    def of_order(self, order_key: str) -> list[LinkRecord]:
        return self.store.of_order(order_key)


def is_order_key(text: str) -> bool:
    try:
        parse_order_key(text)
    except ValueError:
        return False
    return True
