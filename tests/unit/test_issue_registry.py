"""The provider registry: which provider a store gets, its endpoint, and Nuonuo tokens per container."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chalicelib.config import Settings
from chalicelib.domain.errors import AuthTaxError, ConfigurationError
from chalicelib.domain.models import Store
from chalicelib.taxapi import registry
from chalicelib.taxapi.base import Credentials, HttpRequest, HttpResponse
from chalicelib.taxapi.nuonuo import NuonuoProvider
from chalicelib.taxapi.sta import StaProvider

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = Settings.from_env(
    {
        "STA_ENDPOINT": "https://sta.stage.test",
        "NUONUO_ENDPOINT": "https://nuonuo.stage.test/open/v1/services",
        "NUONUO_TOKEN_URL": "https://nuonuo.stage.test/accessToken",
    }
)
STA_CREDS = Credentials({"app_id": "APP1", "sm4_key": "00112233445566778899aabbccddeeff", "sign_key": "k"})
NUONUO_CREDS = Credentials({"app_key": "KEY1", "app_secret": "SECRET1"})


def store(name: str, **provider: object) -> Store:
    raw = json.loads((ROOT / f"examples/stores/{name}.json").read_text())
    raw["provider"].update(provider)
    return Store.model_validate(raw)


class TokenEndpoint:
    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []

    def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        body = json.dumps({"access_token": f"token-{len(self.requests)}", "expires_in": 86400}).encode()
        return HttpResponse(200, (), body)


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    registry.clear_token_caches()
    yield
    registry.clear_token_caches()


def test_sta_store_gets_the_stage_endpoint_and_its_options() -> None:
    provider = registry.provider_for(store("demo-shanghai"), STA_CREDS, SETTINGS)
    assert isinstance(provider, StaProvider)
    request = provider.build_query_credit(datetime.now(UTC))
    assert request.url.startswith("https://sta.stage.test/access/v2/invoke/LQKP/")
    assert request.header("sydwptbh") == "91310115MA1K4ABC2B"


def test_store_endpoint_overrides_the_stage() -> None:
    provider = registry.provider_for(store("demo-shanghai", endpoint="http://127.0.0.1:9999"), STA_CREDS, SETTINGS)
    assert "127.0.0.1:9999" in repr(provider)


def test_nuonuo_token_is_fetched_once_per_container() -> None:
    endpoint = TokenEndpoint()
    providers = registry.Providers(SETTINGS, send=endpoint.send)
    hangzhou = store("demo-hangzhou")

    first = providers.get(hangzhou, NUONUO_CREDS)
    second = providers.get(hangzhou, NUONUO_CREDS)

    assert isinstance(first, NuonuoProvider) and isinstance(second, NuonuoProvider)
    assert len(endpoint.requests) == 1
    assert endpoint.requests[0].url == "https://nuonuo.stage.test/accessToken"
    assert "SECRET1" not in repr(first) and "token-1" not in repr(first)


def test_nuonuo_token_url_option_and_rotated_secret_get_their_own_cache() -> None:
    endpoint = TokenEndpoint()
    hangzhou = store("demo-hangzhou", options={"token_url": "http://127.0.0.1:8900/accessToken"})
    registry.provider_for(hangzhou, NUONUO_CREDS, SETTINGS, send=endpoint.send)
    registry.provider_for(
        hangzhou, Credentials({"app_key": "KEY1", "app_secret": "ROTATED"}), SETTINGS, send=endpoint.send
    )
    assert [r.url for r in endpoint.requests] == ["http://127.0.0.1:8900/accessToken"] * 2


def test_refreshed_only_for_nuonuo_token_errors() -> None:
    endpoint = TokenEndpoint()
    providers = registry.Providers(SETTINGS, send=endpoint.send)
    hangzhou = store("demo-hangzhou")
    providers.get(hangzhou, NUONUO_CREDS)

    assert providers.refreshed(hangzhou, NUONUO_CREDS, AuthTaxError("x", provider_code="070101")) is None
    assert providers.refreshed(store("demo-shanghai"), STA_CREDS, AuthTaxError("x", provider_code="070305")) is None
    fresh = providers.refreshed(hangzhou, NUONUO_CREDS, AuthTaxError("x", provider_code="070305"))
    assert isinstance(fresh, NuonuoProvider)
    assert len(endpoint.requests) == 2


def test_bad_credentials_are_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        registry.provider_for(store("demo-shanghai"), Credentials({"app_id": "A"}), SETTINGS)
