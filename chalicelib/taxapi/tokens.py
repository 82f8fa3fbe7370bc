"""Nuonuo access tokens, sans-IO: build the token request, parse the reply, cache with an injectable clock.

Nuonuo's merchant self-use app (自用型应用) gets its ``accessToken`` with::

    POST https://open.nuonuo.com/accessToken
    Content-Type: application/x-www-form-urlencoded;charset=UTF-8

    client_id={appKey}&client_secret={appSecret}&grant_type=client_credentials

and the reply ``{"access_token": "...", "expires_in": 86400}``. A token lasts 24 h by default and the
token endpoint is rate-limited (50 calls in 30 days), so tokens are cached and refreshed only shortly
before they expire (``refresh_ratio`` of the lifetime, 10 % by default) or, once, when a call is
refused with a token error (070304–070307). The token URL is configurable so a store can point at the
local sandbox (``POST {sandbox}/accessToken``).

A sandbox account may carry a fixed token in its credentials (``access_token``): the cache then
never calls the token endpoint.

Nothing in this module logs; the token never appears in a ``repr`` or an exception message.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar
from urllib.parse import urlencode

from chalicelib.domain.errors import AmbiguousTaxError, AuthTaxError, RetryableTaxError, TaxError
from chalicelib.taxapi.base import Credentials, HttpRequest, HttpResponse
from chalicelib.taxapi.nuonuo_wire import http_error, is_token_error, map_error, require_aware

PRODUCTION_TOKEN_URL = "https://open.nuonuo.com/accessToken"  # noqa: S105 (a URL, not a secret)
TOKEN_OPERATION = "nuonuo.accessToken"  # noqa: S105 (an operation name)
DEFAULT_LIFETIME = 86_400  # seconds, when a reply omits expires_in

#: Words of a token refusal that is a quota or throttle, not bad credentials (Nuonuo documents the
#: endpoint's quota but not its refusal: docs/nuonuo.md). Such a refusal is retried on the schedule.
QUOTA_WORDS = ("超限", "频繁", "限流", "稍后重试", "请稍后")

T = TypeVar("T")


@dataclass(frozen=True)
class AccessToken:
    """One token and when it was obtained. ``repr`` hides the value."""

    value: str = field(repr=False)
    expires_in: int
    obtained_at: datetime

    @property
    def expires_at(self) -> datetime:
        return self.obtained_at + timedelta(seconds=self.expires_in)

    def refresh_at(self, refresh_ratio: float) -> datetime:
        """When to fetch a new one: ``refresh_ratio`` of the lifetime before it expires."""
        ahead = int(self.expires_in * refresh_ratio)
        return self.expires_at - timedelta(seconds=ahead)

    def __repr__(self) -> str:
        return f"AccessToken(value=<hidden>, expires_in={self.expires_in}, obtained_at={self.obtained_at.isoformat()})"


def build_token_request(credentials: Credentials, token_url: str = PRODUCTION_TOKEN_URL) -> HttpRequest:
    """The client-credentials token request of a self-use app (``app_key`` / ``app_secret``)."""
    body = urlencode(
        {
            "client_id": credentials.require("app_key"),
            "client_secret": credentials.require("app_secret"),
            "grant_type": "client_credentials",
        }
    ).encode("ascii")
    return HttpRequest(
        method="POST",
        url=token_url,
        headers=(("Content-Type", "application/x-www-form-urlencoded;charset=UTF-8"),),
        body=body,
        idempotent=True,
        operation=TOKEN_OPERATION,
    )


def parse_token_response(request: HttpRequest, response: HttpResponse, now: datetime) -> AccessToken:
    """``{"access_token", "expires_in"}`` → AccessToken; anything else → the mapped TaxError."""
    require_aware(now)
    try:
        data = json.loads(response.body.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise http_error(response, request.operation)
    token = data.get("access_token")
    if isinstance(token, str) and token and 200 <= response.status < 300:
        return AccessToken(value=token, expires_in=_lifetime(data.get("expires_in")), obtained_at=now)
    code = data.get("code") or data.get("error")
    describe = data.get("describe") or data.get("error_description") or data.get("message") or ""
    if isinstance(code, str) and code:
        error = map_error(code, str(describe), request)
        if response.status >= 500 or response.status == 429:
            raise http_error(response, request.operation)
        if any(word in str(describe) for word in QUOTA_WORDS):
            raise RetryableTaxError(f"token request throttled: {code} {describe}".strip(), provider_code=code)
        if isinstance(error, AuthTaxError) or code.startswith("07") or code.startswith("invalid"):
            raise AuthTaxError(f"token request refused: {code} {describe}".strip(), provider_code=code)
        raise error
    if response.status >= 400:
        raise http_error(response, request.operation)
    raise AmbiguousTaxError("token reply lacks access_token", code="tax_garbled")


def _lifetime(value: object) -> int:
    if value is None or value == "":
        return DEFAULT_LIFETIME
    if isinstance(value, bool):
        raise AmbiguousTaxError("token reply: expires_in is not a number", code="tax_garbled")
    try:
        seconds = int(Decimal(str(value)))
    except ArithmeticError:
        raise AmbiguousTaxError("token reply: expires_in is not a number", code="tax_garbled") from None
    if seconds <= 0:
        raise AmbiguousTaxError("token reply: expires_in is not positive", code="tax_garbled")
    return seconds


def _utcnow() -> datetime:
    return datetime.now(UTC)


class TokenCache:
    """Per-store token cache. ``send`` is the transport (request → response); ``clock`` gives aware now.

    - ``get()`` answers the cached token until ``refresh_ratio`` of its lifetime is left, then fetches.
    - ``call(fn)`` runs ``fn(token)``; on a token error (070304–070307) it refreshes once and runs
      ``fn`` again; a second token error is raised as is. A refused token is dropped before the
      refresh, so a refresh that fails (the endpoint down or throttled) leaves nothing cached and the
      next call fetches afresh. Forced refreshes are at most one per
      ``min_forced_interval`` so a truly bad app cannot burn the endpoint's monthly quota.
    - A fixed ``access_token`` in the credentials (sandbox accounts, never-expiring tokens) is used as
      is and never refreshed.
    """

    def __init__(
        self,
        credentials: Credentials,
        send: Callable[[HttpRequest], HttpResponse],
        *,
        token_url: str = PRODUCTION_TOKEN_URL,
        clock: Callable[[], datetime] = _utcnow,
        refresh_ratio: float = 0.1,
        min_forced_interval: timedelta = timedelta(minutes=1),
    ) -> None:
        if not 0 <= refresh_ratio < 1:
            raise ValueError("refresh_ratio must be in [0, 1)")
        self._credentials = credentials
        self._send = send
        self._token_url = token_url
        self._clock = clock
        self._refresh_ratio = refresh_ratio
        self._min_forced_interval = min_forced_interval
        self._token: AccessToken | None = None
        self._last_forced: datetime | None = None
        self._lock = threading.Lock()
        self.fetches = 0  # how many times the token endpoint was called (for metrics and tests)

    def use_transport(self, send: Callable[[HttpRequest], HttpResponse]) -> None:
        """Fetch with ``send`` from now on (the cache outlives the caller that created it)."""
        self._send = send

    def __repr__(self) -> str:
        state = "fixed" if self._fixed() else ("cached" if self._token else "empty")
        return f"TokenCache(url={self._token_url!r}, state={state})"

    def _fixed(self) -> str | None:
        return self._credentials.values.get("access_token") or None

    @property
    def expires_at(self) -> datetime | None:
        return None if self._token is None else self._token.expires_at

    def get(self) -> str:
        fixed = self._fixed()
        if fixed:
            return fixed
        with self._lock:
            now = require_aware(self._clock())
            if self._token is None or now >= self._token.refresh_at(self._refresh_ratio):
                self._token = self._fetch(now)
            return self._token.value

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def force_refresh(self) -> str:
        """Fetch a new token now (after a token error), at most once per ``min_forced_interval``."""
        fixed = self._fixed()
        if fixed:
            return fixed
        with self._lock:
            now = require_aware(self._clock())
            if self._last_forced is not None and now - self._last_forced < self._min_forced_interval:
                raise AuthTaxError("access token refused again right after a refresh", code="tax_auth")
            self._last_forced = now
            self._token = None  # refused by the platform: never reuse it, even when this fetch fails
            self._token = self._fetch(now)
            return self._token.value

    def call(self, fn: Callable[[str], T]) -> T:
        """Run ``fn(token)``; refresh the token once on a token error and run it again."""
        try:
            return fn(self.get())
        except TaxError as exc:
            if not is_token_error(exc) or self._fixed():
                raise
            token = self.force_refresh()
        return fn(token)

    def _fetch(self, now: datetime) -> AccessToken:
        request = build_token_request(self._credentials, self._token_url)
        self.fetches += 1
        response = self._send(request)
        return parse_token_response(request, response, now)
