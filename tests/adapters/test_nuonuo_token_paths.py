"""Nuonuo token expiry and refusal (``/admin/tokens``) against the real gateway.

First the sandbox's controls (list, expire, refuse) with the independent test client, then the real
worker, ledger (moto), ``NuonuoProvider`` and ``TokenCache`` over HTTP: a token the platform expires
mid-run is refreshed once and the invoice issued exactly once; a refusing token endpoint (its quota,
``docs/nuonuo.md``) puts the order on the retry schedule — not ``failed_auth``, no second invoice —
and it is issued once the refusals stop; wrong credentials fail the order with the platform's code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.adapters.http import HttpTransport
from chalicelib.adapters.secrets import SecretStore
from chalicelib.domain.errors import AuthTaxError, RetryableTaxError
from chalicelib.sandbox import SandboxHandle, start_sandbox
from chalicelib.taxapi.base import Credentials
from chalicelib.taxapi.tokens import TokenCache
from tests.adapters.test_worker_sandbox import (
    HANGZHOU,
    SECRETS,
    _env,
    enqueue_order,
    fields,
    invoices,
    process,
    receive_records,
    sandbox_config,
)
from tests.support.sandbox_clients import NN_KEY, NN_SECRET, NuonuoClient, admin, config, http, nn_order

NUONUO_SECRET = "einvoice/demo-hangzhou/nuonuo"


def tokens(handle: SandboxHandle, body: dict[str, Any] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = admin(handle.url, "POST" if body is not None else "GET", "/admin/tokens", body)
    return result


# --- the sandbox's controls -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    with start_sandbox(config()) as handle:
        yield handle


@pytest.fixture()
def nn(sandbox: SandboxHandle) -> NuonuoClient:
    admin(sandbox.url, "POST", "/admin/reset", {})
    return NuonuoClient(sandbox)


def test_tokens_are_listed_and_expire_on_request(sandbox: SandboxHandle, nn: NuonuoClient) -> None:
    assert nn.get_token().status == 200
    [listed] = tokens(sandbox)["tokens"]
    assert listed["token"] == nn.token and listed["app_key"] == NN_KEY and listed["live"] is True
    assert listed["expires_at"] == sandbox.state.clock.now() + 86400
    assert nn.call("requestBillingNew", nn_order("TK-1")).json()["code"] == "E0000"

    assert tokens(sandbox, {"expire": "all"})["tokens"][0]["live"] is False
    env = nn.call("requestBillingNew", nn_order("TK-2")).json()
    assert (env["code"], env["describe"]) == ("070306", "accessToken 已过期")
    assert nn.get_token().status == 200  # a new token works again
    assert nn.call("requestBillingNew", nn_order("TK-2")).json()["code"] == "E0000"
    assert [t["live"] for t in tokens(sandbox)["tokens"]] == [False, True]


def test_refusals_answer_the_next_n_token_requests(sandbox: SandboxHandle, nn: NuonuoClient) -> None:
    assert tokens(sandbox, {"refuse": 2})["refuse_left"] == 2
    assert nn.get_token(secret="wrong").json()["error"] == "070101"  # credentials are checked first
    for _ in range(2):
        raw = nn.get_token()
        assert raw.status == 400
        assert raw.json() == {"error": "070312", "error_description": "accessToken获取次数超限，请稍后重试"}
    assert nn.get_token().status == 200
    listed = tokens(sandbox)
    assert (listed["refuse_left"], listed["refused"], listed["count"]) == (0, 2, 1)
    for bad in ({"expire": "some"}, {"refuse": -1}, {"refuse": "2"}, {}):
        assert http(sandbox.url, "POST", "/admin/tokens", json.dumps(bad).encode()).status == 400, bad


def test_the_refusal_is_configurable() -> None:
    refusal = {"status": 429, "error": "E9999", "error_description": "调用过于频繁"}
    cfg = config()
    cfg["nuonuo"]["token_refusal"] = refusal
    with start_sandbox(cfg) as handle:
        tokens(handle, {"refuse": 1})
        raw = NuonuoClient(handle).get_token()
        assert raw.status == 429 and raw.json() == {"error": "E9999", "error_description": "调用过于频繁"}


def test_the_token_cache_retries_a_refusal_and_fails_wrong_credentials(sandbox: SandboxHandle) -> None:
    admin(sandbox.url, "POST", "/admin/reset", {})

    def cache(secret: str) -> TokenCache:
        creds = Credentials({"app_key": NN_KEY, "app_secret": secret})
        now = sandbox.state.clock.now()
        return TokenCache(creds, HttpTransport().send, token_url=f"{sandbox.url}/accessToken", clock=lambda: _at(now))

    tokens(sandbox, {"refuse": 1})
    with pytest.raises(RetryableTaxError) as refused:  # the quota: try again later, not bad credentials
        cache(NN_SECRET).get()
    assert refused.value.provider_code == "070312"
    assert cache(NN_SECRET).get() in {t["token"] for t in tokens(sandbox)["tokens"]}
    with pytest.raises(AuthTaxError) as wrong:
        cache("not-the-secret").get()
    assert wrong.value.provider_code == "070101"


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


# --- the gateway ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gateway_sandbox() -> Iterator[SandboxHandle]:
    """The worker's sandbox (examples/secrets.local.json keys), running clock, issuing at once."""
    with start_sandbox(sandbox_config()) as handle:
        yield handle


@pytest.fixture()
def env(stack: Any, gateway_sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from chalicelib import config as gateway_config
    from chalicelib import wiring

    admin(gateway_sandbox.url, "POST", "/admin/reset", {})
    yield _env(stack, gateway_sandbox, monkeypatch, 0)  # wiring.reset(): a fresh token cache
    wiring.reset()
    gateway_config.settings.cache_clear()


def issue(env: Any, aws: Any, order_id: str) -> tuple[str, list[dict[str, Any]]]:
    key = enqueue_order(env, HANGZHOU, order_id)
    return key, receive_records(aws, env)


def test_a_token_expired_by_the_platform_is_refreshed_once_and_the_invoice_issued_once(
    env: Any, aws: Any, gateway_sandbox: SandboxHandle
) -> None:
    first, records = issue(env, aws, "TOK-1")
    assert process(records) == [] and fields(env, first)["status"] == "issued"
    [old] = tokens(gateway_sandbox)["tokens"]

    tokens(gateway_sandbox, {"expire": "all"})  # mid-run: the gateway still believes its token fresh
    key, records = issue(env, aws, "TOK-2")
    assert process(records) == []
    f = fields(env, key)
    assert f["status"] == "issued" and "auth_alerted_at" not in f, f
    assert len(invoices(gateway_sandbox, key)) == 1
    listed = tokens(gateway_sandbox)["tokens"]
    assert len(listed) == 2 and listed[0]["token"] == old["token"]  # exactly one refresh
    assert (listed[0]["live"], listed[1]["live"]) == (False, True)


def test_a_refusing_token_endpoint_is_retried_on_the_schedule_then_issued_once(
    env: Any, aws: Any, gateway_sandbox: SandboxHandle
) -> None:
    tokens(gateway_sandbox, {"refuse": 2})
    key, records = issue(env, aws, "TOK-3")
    for attempt in (1, 2):
        assert process(records) == [records[0]["messageId"]]
        f = fields(env, key)
        assert f["status"] == "retrying" and f["retries"] == attempt, f  # not failed_auth
        assert f["last_error"] == "tax_retryable 070312" and "auth_alerted_at" not in f
        assert not invoices(gateway_sandbox, key)
    assert process(records) == []
    assert fields(env, key)["status"] == "issued"
    assert len(invoices(gateway_sandbox, key)) == 1
    assert tokens(gateway_sandbox)["refused"] == 2


def test_an_expired_token_whose_refresh_is_refused_is_issued_at_the_next_try(
    env: Any, aws: Any, gateway_sandbox: SandboxHandle
) -> None:
    _, records = issue(env, aws, "TOK-4")
    assert process(records) == []
    tokens(gateway_sandbox, {"expire": "all", "refuse": 1})
    key, records = issue(env, aws, "TOK-5")
    assert process(records) == [records[0]["messageId"]]  # 070306, then the refresh is refused
    assert fields(env, key)["status"] == "retrying"
    # the next try (seconds later, inside the cache's one-forced-refresh-a-minute guard) fetches anew
    assert process(records) == []
    f = fields(env, key)
    assert f["status"] == "issued" and "auth_alerted_at" not in f, f
    assert len(invoices(gateway_sandbox, key)) == 1


def test_wrong_credentials_fail_the_order_with_the_platforms_code(
    env: Any, aws: Any, gateway_sandbox: SandboxHandle
) -> None:
    from chalicelib import wiring

    SecretStore().put(
        HANGZHOU.provider.credentials_secret, json.dumps(dict(SECRETS[NUONUO_SECRET], app_secret="wrong"))
    )
    wiring.reset()
    key, records = issue(env, aws, "TOK-6")
    assert process(records) == [records[0]["messageId"]]
    f = fields(env, key)
    assert f["status"] == "failed_auth" and f["last_error"] == "tax_auth 070101", f
    assert "auth_alerted_at" in f  # the operator is told (one alert: test_worker_sandbox)
    assert not invoices(gateway_sandbox, key) and not tokens(gateway_sandbox)["tokens"]
