"""A platform outage on the sandbox clock (``/admin/outage``), and transport freshness on wall time.

The sandbox runs on a *running* clock here (wall time + offset, as in ``make run`` and the chaos run),
the clients on wall time like real processes: a 2-hour outage is ended by advancing the sandbox
clock 7200 s, and the requests that follow must still pass the timestamp window and the replay cache
(measured on wall time, ``SandboxState.transport_now``). The last tests drive the real worker, ledger
(moto) and providers through an outage of each protocol: retried, never issued during it, issued
exactly once after it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.domain.models import Store
from chalicelib.sandbox import SandboxHandle, start_sandbox
from tests.adapters.test_worker_sandbox import (
    HANGZHOU,
    SHANGHAI,
    _env,
    enqueue_order,
    fields,
    invoices,
    process,
    receive_records,
    sandbox_config,
)
from tests.support.sandbox_clients import (
    DELAY,
    SELLER,
    NuonuoClient,
    StaClient,
    admin,
    config,
    http,
    nn_order,
    sta_invoice,
)

TWO_HOURS = 7200


def wall() -> int:
    return int(time.time())


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    """Protocol-level sandbox: the test clients' keys, a running clock (not frozen)."""
    with start_sandbox(config(clock={"start": None})) as handle:
        yield handle


def fresh(handle: SandboxHandle) -> None:
    """Forget everything, the clock back on wall time (reset keeps the clock)."""
    admin(handle.url, "POST", "/admin/reset", {})
    admin(handle.url, "POST", "/admin/clock", {"set": time.time(), "freeze": False})


@pytest.fixture(autouse=True)
def _fresh(sandbox: SandboxHandle) -> None:
    fresh(sandbox)


@pytest.fixture()
def sta(sandbox: SandboxHandle) -> StaClient:
    return StaClient(sandbox)


@pytest.fixture()
def nn(sandbox: SandboxHandle) -> NuonuoClient:
    return NuonuoClient(sandbox)


def outage(handle: SandboxHandle, body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = admin(handle.url, "POST", "/admin/outage", body)
    return result


def advance(handle: SandboxHandle, seconds: float) -> dict[str, Any]:
    result: dict[str, Any] = admin(handle.url, "POST", "/admin/clock", {"advance": seconds})
    return result


def count(handle: SandboxHandle) -> int:
    return int(admin(handle.url, "GET", "/admin/health")["invoices"])


def token_status(handle: SandboxHandle) -> int:
    form = b"client_id=x&client_secret=y&grant_type=client_credentials"
    return http(handle.url, "POST", "/accessToken", form, {"Content-Type": "application/x-www-form-urlencoded"}).status


# --- the sandbox ----------------------------------------------------------------------------------
def test_an_outage_answers_503_everywhere_until_the_clock_passes_its_end(
    sandbox: SandboxHandle, sta: StaClient, nn: NuonuoClient
) -> None:
    assert nn.get_token().status == 200  # a token from before the outage
    assert admin(sandbox.url, "GET", "/admin/outage")["active"] is False
    window = outage(sandbox, {"seconds": TWO_HOURS})
    assert window["active"] is True and window["until"] - window["now"] == pytest.approx(TWO_HOURS, abs=1)

    for _ in range(2):
        raw = sta.post("QDFPSC", sta_invoice("OUT-STA-1"), ts=wall())
        assert raw.status == 503 and raw.headers["retry-after"] == "60"
        assert nn.call("requestBillingNew", nn_order("OUT-NN-1"), ts=wall()).status == 503
        assert token_status(sandbox) == 503  # the token endpoint is down too
        advance(sandbox, TWO_HOURS / 2 - 1)  # 1 s short of the end after the second round
    assert count(sandbox) == 0  # nothing was done during the outage
    assert admin(sandbox.url, "GET", "/admin/outage")["remaining"] == pytest.approx(2, abs=1)

    advance(sandbox, 3)
    assert admin(sandbox.url, "GET", "/admin/outage")["active"] is False
    # the clients' clocks did not move: wall-time timestamps pass, the old token still lives (24 h)
    assert sta.call("QDFPSC", sta_invoice("OUT-STA-1"), ts=wall()).code == "00"
    assert nn.call("requestBillingNew", nn_order("OUT-NN-1"), ts=wall()).json()["code"] == "E0000"
    assert count(sandbox) == 2


def test_an_outage_ends_on_request_or_on_reset_and_refuses_bad_input(sandbox: SandboxHandle, sta: StaClient) -> None:
    outage(sandbox, {"seconds": 60})
    assert outage(sandbox, {"end": True})["active"] is False
    assert sta.call("CXSXED", {"xsfnsrsbh": SELLER}, ts=wall()).code == "00"
    outage(sandbox, {"seconds": 60})
    admin(sandbox.url, "POST", "/admin/reset", {})
    assert admin(sandbox.url, "GET", "/admin/outage")["active"] is False
    for bad in ({}, {"seconds": 0}, {"seconds": "soon"}):
        raw = http(sandbox.url, "POST", "/admin/outage", repr(bad).replace("'", '"').encode())
        assert raw.status == 400, bad


def test_transport_freshness_is_wall_time_business_time_is_the_sandbox_clock(
    sandbox: SandboxHandle, sta: StaClient, nn: NuonuoClient
) -> None:
    assert sta.call("QDFPSC", sta_invoice("FRESH-1"), ts=wall()).code == "00"
    clock = advance(sandbox, TWO_HOURS)
    assert clock["now"] - clock["transport_now"] == pytest.approx(TWO_HOURS, abs=2)
    # business time moved: the invoice accepted before the jump is issued (issue delay on the clock)
    [issued] = admin(sandbox.url, "GET", "/admin/invoices?serial=FRESH-1")["invoices"]
    assert issued["status"] == "issued"
    # transport time did not: a timestamp on the advanced clock is stale, wall time is fresh
    assert sta.call("CXSXED", {"xsfnsrsbh": SELLER}, ts=int(clock["now"])).code == "E2003"
    assert sta.call("CXSXED", {"xsfnsrsbh": SELLER}, ts=wall()).code == "00"
    assert nn.call("queryInvoiceResult", {"orderNos": ["X"]}, ts=int(clock["now"])).json()["code"] == "070601"
    assert nn.call("queryInvoiceResult", {"orderNos": ["X"]}, ts=wall()).json()["code"] == "E9500"
    # the replay cache is on wall time too: 2 h on the sandbox clock do not forget a nonce
    nonce = secrets.token_hex(16)
    assert sta.call("CXSXED", {"xsfnsrsbh": SELLER}, ts=wall(), nonce=nonce).code == "00"
    advance(sandbox, TWO_HOURS)
    assert sta.call("CXSXED", {"xsfnsrsbh": SELLER}, ts=wall(), nonce=nonce).code == "E2003"


def test_a_frozen_clock_is_still_the_clients_clock() -> None:
    """Tests that freeze the clock play the client's clock: freshness follows it (``auto``)."""
    with start_sandbox(config()) as frozen:
        clock = advance(frozen, DELAY)
        assert clock["frozen"] is True and clock["transport_now"] == clock["now"]
        assert StaClient(frozen).call("CXSXED", {"xsfnsrsbh": SELLER}).code == "00"  # ts = the sandbox clock
        assert StaClient(frozen).call("CXSXED", {"xsfnsrsbh": SELLER}, ts=wall()).code == "E2003"
    with start_sandbox(config(clock={"start": None, "transport": "sandbox"})) as legacy:
        advance(legacy, TWO_HOURS)  # the old behaviour, on request: a jump makes wall time stale
        assert StaClient(legacy).call("CXSXED", {"xsfnsrsbh": SELLER}, ts=wall()).code == "E2003"
    with pytest.raises(ValueError, match=r"clock\.transport"):
        start_sandbox(config(clock={"transport": "gps"}))


# --- the gateway through an outage ----------------------------------------------------------------
@pytest.fixture(scope="module")
def gateway_sandbox() -> Iterator[SandboxHandle]:
    """The worker's sandbox (examples/secrets.local.json keys), running clock, issuing at once."""
    with start_sandbox(sandbox_config()) as handle:
        yield handle


@pytest.fixture()
def env(stack: Any, gateway_sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from chalicelib import config as gateway_config
    from chalicelib import wiring

    fresh(gateway_sandbox)
    yield _env(stack, gateway_sandbox, monkeypatch, 0)
    wiring.reset()
    gateway_config.settings.cache_clear()


@pytest.mark.parametrize("store", [SHANGHAI, HANGZHOU], ids=["sta", "nuonuo"])
def test_an_outage_is_retried_then_issued_once_after_the_clock_passes_it(
    env: Any, aws: Any, gateway_sandbox: SandboxHandle, store: Store
) -> None:
    key = enqueue_order(env, store, f"OUTAGE-{store.store_id}")
    records = receive_records(aws, env)
    outage(gateway_sandbox, {"seconds": TWO_HOURS})

    for attempt in (1, 2):  # SQS redelivers on the retry schedule
        assert process(records) == [records[0]["messageId"]]
        f = fields(env, key)
        assert f["status"] == "retrying" and f["retries"] == attempt, f  # not failed, not ambiguous
        assert "HTTP503" in f["last_error"]
        assert not invoices(gateway_sandbox, key)  # nothing created during the outage
        advance(gateway_sandbox, TWO_HOURS / 2 - 5)

    advance(gateway_sandbox, 10)  # the outage is over: 2 h passed on the platform, not for the gateway
    assert process(records) == []
    f = fields(env, key)
    assert f["status"] == "issued", f
    [invoice] = invoices(gateway_sandbox, key)
    assert invoice["status"] == "issued" and f["invoice_number"] == invoice["number"]
    assert admin(gateway_sandbox.url, "GET", "/admin/health")["invoices"] == 1  # nothing else either
