"""Fault injection and the admin endpoints, observed over real HTTP."""

from __future__ import annotations

import http.client as httpclient
import json
from collections.abc import Iterator

import pytest

from chalicelib.sandbox import SandboxHandle
from tests.support.sandbox_clients import (
    DELAY,
    SELLER,
    NuonuoClient,
    StaClient,
    admin,
    config,
    http,
    nn_order,
    running,
    sm4_decrypt,
    sta_invoice,
    sta_sign,
)


@pytest.fixture()
def sandbox() -> Iterator[SandboxHandle]:
    with running() as handle:
        yield handle


@pytest.fixture()
def sta(sandbox: SandboxHandle) -> StaClient:
    return StaClient(sandbox)


def faults(handle: SandboxHandle, **settings: object) -> dict:
    return admin(handle.url, "POST", "/admin/faults", settings)


def count(handle: SandboxHandle, order_no: str) -> int:
    return admin(handle.url, "GET", f"/admin/invoices/count?order_no={order_no}")["count"]


def test_busy_is_E3001_on_sta_and_429_on_nuonuo(sandbox: SandboxHandle, sta: StaClient) -> None:
    faults(sandbox, busy_pct=100)
    reply = sta.call("QDFPSC", sta_invoice("S1"))
    assert reply.code == "E3001" and reply.signature_ok
    nn = NuonuoClient(sandbox)
    raw = nn.call("requestBillingNew", nn_order("N1"))
    assert raw.status == 429 and "繁忙" in raw.json()["describe"]
    assert count(sandbox, "ORDER-S1") == 0 and count(sandbox, "N1") == 0


def test_5xx_does_no_work(sandbox: SandboxHandle, sta: StaClient) -> None:
    faults(sandbox, error_5xx_pct=100)
    raw = sta.post("QDFPSC", sta_invoice("S1"))
    assert raw.status in (500, 502, 503)
    assert count(sandbox, "ORDER-S1") == 0


def test_timeout_after_commit_drops_the_reply_but_keeps_the_invoice(sandbox: SandboxHandle, sta: StaClient) -> None:
    faults(sandbox, timeout_after_commit_pct=100, timeout_mode="close")
    with pytest.raises((httpclient.RemoteDisconnected, ConnectionError)):
        sta.post("QDFPSC", sta_invoice("S1"))
    assert count(sandbox, "ORDER-S1") == 1
    faults(sandbox, timeout_after_commit_pct=0)
    assert sta.call("QDFPSC", sta_invoice("S1")).code == "E4001"  # the retry finds it
    assert count(sandbox, "ORDER-S1") == 1


def test_garbled_signature_decrypt_and_json(sandbox: SandboxHandle, sta: StaClient) -> None:
    faults(sandbox, garbled_pct=100, garble_mode="signature")
    raw = sta.post("CXSXED", {"xsfnsrsbh": SELLER})
    inner = raw.json()["body"]
    assert (
        sta_sign("CXSXED", raw.headers["x-timestamp"], raw.headers["x-nonce"], inner.encode())
        != raw.headers["access_signature"]
    )
    faults(sandbox, garble_mode="decrypt")
    raw = sta.post("CXSXED", {"xsfnsrsbh": SELLER})
    inner = raw.json()["body"]
    assert (
        sta_sign("CXSXED", raw.headers["x-timestamp"], raw.headers["x-nonce"], inner.encode())
        == raw.headers["access_signature"]
    )
    with pytest.raises(ValueError):
        sm4_decrypt(inner)
    faults(sandbox, garble_mode="json")
    raw = sta.post("CXSXED", {"xsfnsrsbh": SELLER})
    with pytest.raises(json.JSONDecodeError):
        raw.json()
    nn_raw = NuonuoClient(sandbox).call("getInvoiceStock", {})
    with pytest.raises(json.JSONDecodeError):
        nn_raw.json()


def test_faults_can_be_limited_to_some_services(sandbox: SandboxHandle, sta: StaClient) -> None:
    faults(sandbox, busy_pct=100, only=["QDFPSC"])
    assert sta.call("CXSXED", {"xsfnsrsbh": SELLER}).code == "00"
    assert sta.call("QDFPSC", sta_invoice("S1")).code == "E3001"


def test_latency_still_answers(sandbox: SandboxHandle, sta: StaClient) -> None:
    assert faults(sandbox, latency_ms=20)["latency_ms"] == 20
    assert sta.call("CXSXED", {"xsfnsrsbh": SELLER}).code == "00"


def test_issue_failure_ends_failed_and_restores_credit(sandbox: SandboxHandle, sta: StaClient) -> None:
    faults(sandbox, issue_fail_pct=100)
    assert sta.call("QDFPSC", sta_invoice("S1")).code == "00"
    admin(sandbox.url, "POST", "/admin/clock", {"advance": DELAY})
    res = sta.call("CXQDFPSCJG", {"fpqqlsh": ["S1"]}).data["jgs"][0]
    assert res["zt"] == "03" and res["sbyy"] and res["fphm"] == ""
    assert sta.call("CXSXED", {"xsfnsrsbh": SELLER}).data["ysyed"] == "0.00"


def test_seeded_draws_are_reproducible() -> None:
    outcomes = []
    for _ in range(2):
        with running(config(faults={"seed": 42, "busy_pct": 50})) as handle:
            sta = StaClient(handle)
            outcomes.append([sta.call("CXSXED", {"xsfnsrsbh": SELLER}).code for _ in range(12)])
    assert outcomes[0] == outcomes[1]
    assert set(outcomes[0]) == {"00", "E3001"}


def test_faults_from_the_config_file() -> None:
    with running(config(faults={"busy_pct": 100})) as handle:
        assert StaClient(handle).call("CXSXED", {"xsfnsrsbh": SELLER}).code == "E3001"
        admin(handle.url, "POST", "/admin/reset")  # reset restores the configured faults
        assert admin(handle.url, "GET", "/admin/faults")["busy_pct"] == 100


def test_bad_fault_setting_is_400(sandbox: SandboxHandle) -> None:
    raw = http(sandbox.url, "POST", "/admin/faults", b'{"busy_pct": 101}')
    assert raw.status == 400
    raw = http(sandbox.url, "POST", "/admin/faults", b'{"nonsense": 1}')
    assert raw.status == 400


def test_admin_health_listing_clock_and_reset(sandbox: SandboxHandle, sta: StaClient) -> None:
    health = admin(sandbox.url, "GET", "/admin/health")
    assert health["status"] == "ok" and health["now"] == 1767225600
    sta.call("QDFPSC", sta_invoice("S1"))
    sta.call("QDFPSC", sta_invoice("S2"))
    listing = admin(sandbox.url, "GET", "/admin/invoices")
    assert listing["count"] == 2 and {i["serial"] for i in listing["invoices"]} == {"S1", "S2"}
    only = admin(sandbox.url, "GET", "/admin/invoices?serial=S2")["invoices"]
    assert len(only) == 1 and only[0]["status"] == "pending" and only[0]["amount"] == "100.00"
    assert admin(sandbox.url, "POST", "/admin/clock", {"set": 1767229200})["now"] == 1767229200
    assert admin(sandbox.url, "GET", "/admin/invoices?serial=S2")["invoices"][0]["status"] == "issued"
    assert admin(sandbox.url, "POST", "/admin/reset")["status"] == "reset"
    assert admin(sandbox.url, "GET", "/admin/invoices")["count"] == 0
    assert http(sandbox.url, "GET", "/admin/nope").status == 404
