"""The headquarters dashboard: counters kept as invoices change add up; an operator sees only its stores.

HTML checked through ``chalice.test.Client`` (the browser tier's ``tests/browser/`` fixtures did not
exist when this was written)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.app.conftest import signed, standard_event
from tests.support import invoices
from tests.support.admin_client import add_operator, header, session_of

A, B = "demo-shanghai", "demo-hangzhou"
COFFEE, CAKE = "3070401000000000000", "1030201000000000000"


@pytest.fixture()
def world(client: Any) -> Iterator[dict[str, Any]]:
    """In A: three issued (two tax codes), one failed, one rejected by the intake; in B: one issued."""
    from chalicelib import wiring

    wiring.reset()
    ledger, counter = wiring.ledger(), wiring.invoice_counter()
    invoices.issue(ledger, counter, A, [(COFFEE, "30.00"), (CAKE, "18.00")])
    invoices.issue(ledger, counter, A, [(COFFEE, "40.00")])
    invoices.issue(ledger, counter, A, [(COFFEE, "12.00")])
    failed = invoices.fail(ledger, counter, A, [(COFFEE, "9.90")])
    body, headers = signed(standard_event(amount="-5.00"))  # refused by the rules: recorded rejected
    r = client.http.post(f"/webhooks/standard/{A}", headers=headers, body=body)
    assert r.status_code == 422, r.body
    rejected = json.loads(r.body)["order_key"]
    invoices.issue(ledger, counter, B, [(COFFEE, "500.00")])
    add_operator("hq", "--all")
    add_operator("sh-manager", "--stores", A)
    add_operator("hz-manager", "--stores", B)
    yield {"failed": failed, "rejected": rejected}
    wiring.reset()


def _api(client: Any, token: str, query: str = "") -> Any:
    return client.http.get(f"/admin/api/dashboard{query}", headers={"Cookie": f"einvoice_session={token}"})


def test_counters_add_up(client: Any, world: dict[str, Any]) -> None:
    from chalicelib.adapters import aws
    from chalicelib.config import settings

    token = session_of(client, "hq")
    calls: list[tuple[str, str]] = []

    def seen(model: Any, params: dict[str, Any], **_: Any) -> None:
        calls.append((model.name, params.get("TableName", ",".join(params.get("RequestItems", {})))))

    events = aws.client("dynamodb").meta.events
    events.register("before-parameter-build.dynamodb", seen)
    try:
        view = json.loads(_api(client, token, f"?store={A}").body)
    finally:
        events.unregister("before-parameter-build.dynamodb", seen)
    ledger = settings().ledger_table
    assert ("Scan", ledger) not in calls and any(c == ("Query", ledger) for c in calls)  # counters, no scan
    total = view["total"]
    assert (total["issued"], total["failed"], total["rejected"], total["blocked"]) == (3, 1, 1, 0)
    assert total["amount"] == "100.00"
    assert view["exception_ratio"] == "0.4000"  # 2 exceptions / (3 issued + 2)
    share = {s["tax_code"]: (s["lines"], s["amount"]) for s in view["tax_share"]}
    assert share == {COFFEE: (3, "82.00"), CAKE: (1, "18.00")}
    assert view["latency_p50_seconds"] == view["latency_p95_seconds"] == "30"  # paid 20 s before issue
    assert sum(d["issued"] for d in view["series"]) == 3 and len(view["series"]) == 14
    open_keys = {i["order_key"]: i["status"] for i in view["open_items"]}
    assert open_keys == {world["failed"]: "failed", world["rejected"]: "rejected"}
    chain = json.loads(_api(client, token).body)
    assert chain["scope"] is None and chain["total"]["issued"] == 4 and chain["total"]["amount"] == "600.00"
    assert {s["store_id"] for s in chain["stores"]} >= {A, B}


def test_an_operator_sees_only_its_stores(client: Any, world: dict[str, Any]) -> None:
    token = session_of(client, "sh-manager")
    mine = json.loads(_api(client, token).body)
    assert [s["store_id"] for s in mine["stores"]] == [A]
    assert mine["total"]["issued"] == 3 and mine["total"]["amount"] == "100.00"  # B's 500.00 not in it
    assert _api(client, token, f"?store={B}").status_code == 404
    page = client.http.get(f"/admin?store={B}", headers={"Cookie": f"einvoice_session={token}"})
    assert page.status_code == 404 and "500.00" not in page.body.decode()
    other = json.loads(_api(client, session_of(client, "hz-manager")).body)
    assert other["open_items"] == [] and other["total"]["issued"] == 1


def test_the_page_renders_server_side_svg_escaped(client: Any, world: dict[str, Any]) -> None:
    token = session_of(client, "hq")
    r = client.http.get(f"/admin?store={A}&days=7", headers={"Cookie": f"einvoice_session={token}"})
    assert r.status_code == 200
    assert header(r, "content-type").startswith("text/html")
    assert "default-src 'none'" in header(r, "content-security-policy")
    page = r.body.decode()
    assert page.count("<svg") == 3 and "<script" not in page  # charts drawn server-side, no JavaScript
    assert "src=" not in page and 'href="http' not in page  # no external asset (no CDN)
    assert f"einvoice orders show {world['failed']}" in page
    assert '<b id="issued">3</b>' in page and "¥100.00" in page and "40.0 %" in page
    hostile = client.http.get("/admin?store=<script>", headers={"Cookie": f"einvoice_session={token}"})
    assert hostile.status_code == 404 and "<script>" not in hostile.body.decode()


def test_admin_routes_are_not_shadowed_by_the_catch_alls(client: Any) -> None:
    import app as app_module

    assert client.http.get("/admin/login").status_code == 200
    assert "/{p1}/{p2}" in app_module.app.routes  # the catch-all exists, and yet the literal route answered
    assert client.http.get("/nothing/here").status_code == 404
