"""Nuonuo access tokens: request/reply, caching with a fake clock, one refresh on a token error."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import pytest

from chalicelib.domain.errors import (
    AmbiguousTaxError,
    AuthTaxError,
    ConfigurationError,
    PermanentTaxError,
    RetryableTaxError,
)
from chalicelib.taxapi.base import Credentials, HttpRequest, HttpResponse
from chalicelib.taxapi.tokens import (
    PRODUCTION_TOKEN_URL,
    AccessToken,
    TokenCache,
    build_token_request,
    parse_token_response,
)

CREDS = Credentials({"app_key": "SD63236305", "app_secret": "SDDED2523BED4643"})
T0 = datetime(2024, 5, 8, 0, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


class FakeTokenEndpoint:
    def __init__(self, expires_in: int = 86_400) -> None:
        self.calls: list[HttpRequest] = []
        self.expires_in = expires_in

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.calls.append(request)
        body = {"access_token": f"token-{len(self.calls)}", "expires_in": self.expires_in}
        return HttpResponse(200, (), json.dumps(body).encode())


def ok(body: object, status: int = 200) -> HttpResponse:
    return HttpResponse(status, (), json.dumps(body, ensure_ascii=False).encode())


def test_token_request_is_client_credentials_form_post() -> None:
    request = build_token_request(CREDS)
    assert (request.method, request.url) == ("POST", PRODUCTION_TOKEN_URL)
    assert request.header("content-type") == "application/x-www-form-urlencoded;charset=UTF-8"
    assert dict(parse_qsl(request.body.decode())) == {
        "client_id": "SD63236305",
        "client_secret": "SDDED2523BED4643",
        "grant_type": "client_credentials",
    }
    assert build_token_request(CREDS, "http://127.0.0.1:9000/accessToken").url == "http://127.0.0.1:9000/accessToken"


def test_token_request_needs_both_credentials() -> None:
    with pytest.raises(ConfigurationError):
        build_token_request(Credentials({"app_key": "k"}))


def test_parse_token_reply() -> None:
    token = parse_token_response(build_token_request(CREDS), ok({"access_token": "abc", "expires_in": 86400}), T0)
    assert token.value == "abc"
    assert token.expires_at == T0 + timedelta(days=1)
    assert token.refresh_at(0.1) == T0 + timedelta(seconds=77_760)
    assert "abc" not in repr(token)
    assert parse_token_response(build_token_request(CREDS), ok({"access_token": "x"}), T0).expires_in == 86_400
    assert (
        parse_token_response(build_token_request(CREDS), ok({"access_token": "x", "expires_in": "60"}), T0).expires_in
        == 60
    )


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (HttpResponse(200, (), b"<html>"), AmbiguousTaxError),
        (HttpResponse(502, (), b""), RetryableTaxError),
        (HttpResponse(429, (), b"slow down"), RetryableTaxError),
        (ok({"code": "070101", "describe": "appkey无效"}), AuthTaxError),
        (ok({"error": "invalid_client", "error_description": "bad secret"}, status=400), AuthTaxError),
        (ok({"code": "070306", "describe": "超限"}, status=503), RetryableTaxError),
        (ok({"code": "E4000", "describe": "参数错误"}), PermanentTaxError),
        (ok({"something": "else"}, status=401), AuthTaxError),
        (ok({"something": "else"}), AmbiguousTaxError),
        (ok({"access_token": "x", "expires_in": "soon"}), AmbiguousTaxError),
        (ok({"access_token": "x", "expires_in": 0}), AmbiguousTaxError),
        (ok({"access_token": "x", "expires_in": True}), AmbiguousTaxError),
    ],
    ids=[
        "html",
        "502",
        "429",
        "bad-appkey",
        "oauth-error",
        "busy-5xx",
        "param",
        "401",
        "no-token",
        "expires-text",
        "expires-zero",
        "expires-bool",
    ],
)
def test_token_reply_errors(response: HttpResponse, error: type[Exception]) -> None:
    with pytest.raises(error) as err:
        parse_token_response(build_token_request(CREDS), response, T0)
    assert "SDDED2523BED4643" not in str(err.value)


def test_cache_reuses_token_until_ten_percent_before_expiry() -> None:
    clock, endpoint = FakeClock(), FakeTokenEndpoint()
    cache = TokenCache(CREDS, endpoint, clock=clock)
    assert cache.get() == "token-1"
    clock.advance(hours=21)
    assert cache.get() == "token-1"
    clock.advance(hours=0.6)  # 21.6 h = 90 % of 24 h
    assert cache.get() == "token-2"
    assert len(endpoint.calls) == cache.fetches == 2
    assert cache.expires_at == clock.now + timedelta(days=1)


def test_cache_refreshes_once_on_token_error_then_succeeds() -> None:
    clock, endpoint = FakeClock(), FakeTokenEndpoint()
    cache = TokenCache(CREDS, endpoint, clock=clock)
    seen: list[str] = []

    def call(token: str) -> str:
        seen.append(token)
        if token == "token-1":
            raise AuthTaxError("expired", provider_code="070304")
        return "ok"

    assert cache.call(call) == "ok"
    assert seen == ["token-1", "token-2"]


def test_cache_gives_up_after_one_refresh() -> None:
    cache = TokenCache(CREDS, FakeTokenEndpoint(), clock=FakeClock())

    def always_expired(token: str) -> str:
        raise AuthTaxError("expired", provider_code="070305")

    with pytest.raises(AuthTaxError):
        cache.call(always_expired)
    assert cache.fetches == 2


def test_forced_refreshes_are_rate_limited() -> None:
    clock = FakeClock()
    cache = TokenCache(CREDS, FakeTokenEndpoint(), clock=clock)
    cache.force_refresh()
    with pytest.raises(AuthTaxError):
        cache.force_refresh()
    clock.advance(minutes=2)
    assert cache.force_refresh() == "token-2"


def test_other_errors_do_not_refresh() -> None:
    cache = TokenCache(CREDS, FakeTokenEndpoint(), clock=FakeClock())

    def no_rights(token: str) -> str:
        raise AuthTaxError("no rights", provider_code="E9338")

    with pytest.raises(AuthTaxError):
        cache.call(no_rights)
    assert cache.fetches == 1


def test_fixed_token_never_calls_the_endpoint() -> None:
    endpoint = FakeTokenEndpoint()
    cache = TokenCache(Credentials({**CREDS.values, "access_token": "fixed"}), endpoint, clock=FakeClock())

    def expired(token: str) -> str:
        raise AuthTaxError("expired", provider_code="070304")

    assert cache.get() == "fixed" and cache.force_refresh() == "fixed"
    with pytest.raises(AuthTaxError):
        cache.call(expired)
    assert endpoint.calls == []


def test_invalidate_forces_a_fetch_and_repr_hides_token() -> None:
    cache = TokenCache(CREDS, FakeTokenEndpoint(), clock=FakeClock())
    assert "empty" in repr(cache)
    token = cache.get()
    assert token not in repr(cache) and "cached" in repr(cache)
    cache.invalidate()
    assert cache.get() == "token-2"


def test_cache_config_is_validated() -> None:
    with pytest.raises(ValueError):
        TokenCache(CREDS, FakeTokenEndpoint(), refresh_ratio=1.5)
    with pytest.raises(ValueError):
        TokenCache(CREDS, FakeTokenEndpoint(), clock=lambda: datetime(2024, 1, 1)).get()


def test_access_token_repr_hides_value() -> None:
    assert "secret-value" not in repr(AccessToken("secret-value", 10, T0))
