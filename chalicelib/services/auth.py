"""Who may call: per-store API keys (the shop platforms' invoice API) and operators' sessions (/admin).

Ports only (:class:`AuthStorePort`): no boto3. The rules, each in one place here:

- **A store's API key** is ``ek_<store>_<secret>``: the store id (``[a-z0-9-]``, never ``_``) names the
  store, the secret is 32 random bytes (256 bits, URL-safe base64). Only its SHA-256 is stored: a
  256-bit random secret cannot be brute-forced, so a fast unsalted hash is enough (a password needs
  scrypt, a key does not). Presented keys are compared with :func:`hmac.compare_digest` against the
  current and — within its grace period after a rotation — the previous hash, both always compared.
- **An operator** has a scrypt password hash (standard library, n=2**14, r=8, p=1, 16-byte salt) and a
  set of stores, or ``*`` (headquarters: every store).
- **A session** is a random 256-bit token in an HttpOnly cookie; only its SHA-256 is stored, with the
  operator, the stores, a CSRF token and its expiry (8 h by default).
- **Login attempts** are limited per operator: :data:`LOGIN_FAILURES_ALLOWED` failures within
  :data:`LOGIN_WINDOW_SECONDS` lock the name until the window ends, whatever the password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Protocol

from chalicelib.domain.errors import EInvoiceError

#: Every key starts with this; a key names its store: ``ek_<store>_<secret>``.
API_KEY_PREFIX = "ek_"
API_KEY_BYTES = 32  # 256 bits
#: After ``einvoice stores api-key STORE --rotate`` the previous key keeps working this long.
ROTATION_GRACE_SECONDS = 24 * 3600
SESSION_SECONDS = 8 * 3600
SESSION_BYTES = 32
LOGIN_FAILURES_ALLOWED = 5
LOGIN_WINDOW_SECONDS = 15 * 60
#: scrypt's cost (RFC 7914): ~50 ms and 16 MiB per login on a Lambda core.
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN = 2**14, 8, 1, 32
MIN_PASSWORD_LENGTH = 12
ALL_STORES = "*"
OPERATOR_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")
_KEY_RE = re.compile(r"^ek_([a-z0-9][a-z0-9-]{1,62})_([A-Za-z0-9_-]{40,})$")


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- records and the port --------------------------------------------------------------------------
@dataclass(frozen=True)
class ApiKeyRecord:
    """A store's key hashes: the current one, and the previous one while its grace period lasts."""

    store_id: str
    current_hash: str
    created_at: float
    previous_hash: str | None = None
    previous_valid_until: float | None = None


@dataclass(frozen=True)
class OperatorRecord:
    name: str
    password_hash: str
    stores: frozenset[str]  # {"*"}: headquarters
    created_at: float


@dataclass(frozen=True)
class SessionRecord:
    token_hash: str
    operator: str
    stores: frozenset[str]
    csrf: str
    expires_at: float


class AuthStorePort(Protocol):
    """Where the hashes live (the ledger table, each under its own key prefix: adapters/auth_store.py)."""

    def get_api_key(self, store_id: str) -> ApiKeyRecord | None: ...
    def put_api_key(self, record: ApiKeyRecord) -> None: ...
    def get_operator(self, name: str) -> OperatorRecord | None: ...
    def put_operator(self, record: OperatorRecord) -> None: ...
    def put_session(self, record: SessionRecord) -> None: ...
    def get_session(self, token_hash: str) -> SessionRecord | None:
        """The session, or None (also when absent); the caller checks the expiry."""
        ...

    def delete_session(self, token_hash: str) -> None: ...
    def add_login_failure(self, name: str, window: int, *, expires_at: float) -> int:
        """Count one failed login of ``name`` in ``window``; the window's count after it."""
        ...

    def login_failures(self, name: str, window: int) -> int: ...


# --- API keys ---------------------------------------------------------------------------------------
class KeyCheck:
    """What a presented key means for a store's route (see :meth:`StoreKeys.check`)."""

    VALID = "valid"
    MISSING = "missing"  # no key, or not the shape of a key → 401
    INVALID = "invalid"  # a key naming this store that does not match → 401
    OTHER_STORE = "other_store"  # a key naming another store → 404, as for an order that does not exist


def store_of_key(key: str) -> str | None:
    match = _KEY_RE.match(key)
    return match.group(1) if match else None


class StoreKeys:
    def __init__(self, store: AuthStorePort, *, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock

    def issue(self, store_id: str, *, rotate: bool, grace_seconds: int = ROTATION_GRACE_SECONDS) -> str:
        """A new key for ``store_id`` (returned once, stored hashed). Refused when one exists and
        ``rotate`` is false; on rotation the key it replaces stays valid for ``grace_seconds``."""
        existing = self.store.get_api_key(store_id)
        if existing is not None and not rotate:
            raise KeyExists(store_id)
        key = f"{API_KEY_PREFIX}{store_id}_{secrets.token_urlsafe(API_KEY_BYTES)}"
        now = self.clock()
        previous = existing.current_hash if existing is not None and grace_seconds > 0 else None
        self.store.put_api_key(
            ApiKeyRecord(
                store_id=store_id,
                current_hash=sha256_hex(key),
                created_at=now,
                previous_hash=previous,
                previous_valid_until=now + grace_seconds if previous else None,
            )
        )
        return key

    def check(self, store_id: str, presented: str | None) -> str:
        """A :class:`KeyCheck` value for ``presented`` on a route of ``store_id``."""
        named = store_of_key(presented or "")
        if named is None:
            return KeyCheck.MISSING
        if named != store_id:
            return KeyCheck.OTHER_STORE
        record = self.store.get_api_key(store_id)
        digest = sha256_hex(presented or "")
        if record is None:
            hmac.compare_digest(digest, "0" * 64)  # the same work as a stored key
            return KeyCheck.INVALID
        current = hmac.compare_digest(digest, record.current_hash)
        previous = record.previous_hash is not None and hmac.compare_digest(digest, record.previous_hash)
        previous = previous and (record.previous_valid_until or 0) > self.clock()
        return KeyCheck.VALID if current or previous else KeyCheck.INVALID


class Unauthorized(EInvoiceError):
    """No key, not a key, or a key of this store that does not match (401)."""

    code = "unauthorized"


class KeyExists(Exception):
    def __init__(self, store_id: str) -> None:
        super().__init__(f"store {store_id} has an API key already: rotate it with --rotate")
        self.store_id = store_id


# --- passwords ----------------------------------------------------------------------------------
def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$<salt b64>$<hash b64>`` (the parameters travel with the hash)."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=SCRYPT_DKLEN)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, expected)


@cache
def _dummy_hash() -> str:
    """A scrypt hash compared when the operator does not exist, so an unknown name costs the same time
    (made on first use: scrypt at import would cost every cold start ~50 ms)."""
    return hash_password("not-an-operator", salt=b"\0" * 16)


# --- operators and sessions -----------------------------------------------------------------------
@dataclass(frozen=True)
class Operator:
    """A signed-in operator: who, which stores (``all_stores``: headquarters), the session's CSRF token."""

    name: str
    stores: frozenset[str]
    csrf: str = ""
    expires_at: float = 0.0
    session_hash: str = field(default="", repr=False)

    @property
    def all_stores(self) -> bool:
        return ALL_STORES in self.stores

    def may_see(self, store_id: str) -> bool:
        return self.all_stores or store_id in self.stores

    def visible(self, store_ids: Iterable[str]) -> list[str]:
        return sorted(s for s in store_ids if self.may_see(s))


class NotVisible(Exception):
    """A store the operator may not see (answered as if it did not exist)."""


class LoginRefused(Exception):
    """A wrong name or password (one answer for both)."""


class LoginLocked(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins: try again in {retry_after} s")
        self.retry_after = retry_after


class OperatorAuth:
    def __init__(
        self,
        store: AuthStorePort,
        *,
        clock: Callable[[], float],
        session_seconds: int = SESSION_SECONDS,
    ) -> None:
        self.store = store
        self.clock = clock
        self.session_seconds = session_seconds

    def add(self, name: str, password: str, stores: Iterable[str] | None) -> OperatorRecord:
        """Create or replace operator ``name``; ``stores`` None: every store (headquarters)."""
        if not OPERATOR_RE.match(name):
            raise ValueError("an operator name is 2–63 characters of a-z, 0-9, '.', '_' and '-'")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise ValueError(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
        chosen = frozenset({ALL_STORES}) if stores is None else frozenset(s for s in stores if s)
        if not chosen:
            raise ValueError("an operator needs at least one store (or --all)")
        record = OperatorRecord(name, hash_password(password), chosen, self.clock())
        self.store.put_operator(record)
        return record

    def login(self, name: str, password: str) -> tuple[str, Operator]:
        """A new session (the raw token, for the cookie, and the operator) or LoginRefused/LoginLocked."""
        now = self.clock()
        window = int(now // LOGIN_WINDOW_SECONDS)
        key = name.strip().lower()[:64]
        if self.store.login_failures(key, window) >= LOGIN_FAILURES_ALLOWED:
            raise LoginLocked(int((window + 1) * LOGIN_WINDOW_SECONDS - now) + 1)
        record = self.store.get_operator(key) if OPERATOR_RE.match(key) else None
        ok = verify_password(password, record.password_hash if record else _dummy_hash())
        if record is None or not ok:
            self.store.add_login_failure(key, window, expires_at=(window + 2) * LOGIN_WINDOW_SECONDS)
            raise LoginRefused()
        token = secrets.token_urlsafe(SESSION_BYTES)
        session = SessionRecord(
            token_hash=sha256_hex(token),
            operator=record.name,
            stores=record.stores,
            csrf=secrets.token_urlsafe(24),
            expires_at=now + self.session_seconds,
        )
        self.store.put_session(session)
        return token, _operator(session)

    def session(self, token: str | None) -> Operator | None:
        """The operator of a live session, or None (no token, unknown, expired)."""
        if not token:
            return None
        found = self.store.get_session(sha256_hex(token))
        if found is None or found.expires_at <= self.clock():
            return None
        return _operator(found)

    def logout(self, token: str | None) -> None:
        if token:
            self.store.delete_session(sha256_hex(token))


def _operator(session: SessionRecord) -> Operator:
    return Operator(session.operator, session.stores, session.csrf, session.expires_at, session.token_hash)


def csrf_ok(expected: str, presented: str | None) -> bool:
    return bool(expected) and hmac.compare_digest(expected.encode(), (presented or "").encode())
