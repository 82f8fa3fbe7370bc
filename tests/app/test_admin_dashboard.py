"""The headquarters dashboard: counters kept as invoices change add up; an operator sees only its stores.

HTML checked through ``chalice.test.Client`` (the browser tier's ``tests/browser/`` fixtures did not
exist when this was written)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.domain.order_keys import order_key
from chalicelib.domain.order_state import OrderEvent
from chalicelib.taxapi.base import InvoiceResult, InvoiceStatus
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
    assert page.count("<svg") == 4 and "<script" not in page  # charts drawn server-side, no JavaScript
    assert "src=" not in page and 'href="http' not in page  # no external asset (no CDN)
    assert f"einvoice orders show {world['failed']}" in page
    assert '<b id="issued">3</b>' in page and "¥100.00" in page and "40.0 %" in page
    hostile = client.http.get("/admin?store=<script>", headers={"Cookie": f"einvoice_session={token}"})
    assert hostile.status_code == 404 and "<script>" not in hostile.body.decode()


HOSTILE = '<script>alert(1)</script>"&'


def _issue_with_skus(ledger: Any, counter: Any, store_id: str, lines: list[tuple[str, str, str | None]]) -> None:
    """Like ``invoices.issue``, the normalised lines carrying SKUs (``None``: a line without one)."""
    order_id = f"O-{uuid.uuid4().hex[:8]}"
    key = order_key(store_id, "standard", order_id)
    body = invoices.payload(order_id, "standard", [(code, total) for code, total, _ in lines], datetime.now(UTC))
    for line, (_, _, sku) in zip(body["order"]["lines"], lines, strict=True):
        line["sku"] = sku
    ledger.create_order(key, store_id, kind="paid", status="received", payload=body, outbox=True)
    now = datetime.now(UTC).timestamp()
    ledger.transition(key, OrderEvent.ENQUEUED, now=now)
    claim = uuid.uuid4().hex
    assert ledger.transition(key, OrderEvent.CLAIM, now=now, claim_id=claim, lease_until=now + 60).ok
    total = sum((Decimal(t) for _, t, _ in lines), Decimal(0))
    result = InvoiceResult(
        serial="S",
        order_no=order_id,
        status=InvoiceStatus.ISSUED,
        invoice_number="2531" + str(uuid.uuid4().int)[:16],
        issued_at=datetime.now(UTC),
        total_amount=total,
        total_tax=Decimal(0),
    )
    assert invoices.settler(ledger, counter).result(key, claim, result, sent=1, keys={}).status is not None


@pytest.fixture()
def sku_world(client: Any) -> Iterator[None]:
    """In A: two issued orders (a SKU on two lines, a hostile SKU, a line without one); in B: one."""
    from chalicelib import wiring

    wiring.reset()
    ledger, counter = wiring.ledger(), wiring.invoice_counter()
    _issue_with_skus(ledger, counter, A, [(COFFEE, "30.00", "LATTE-L"), (CAKE, "18.00", HOSTILE)])
    _issue_with_skus(ledger, counter, A, [(COFFEE, "40.00", "LATTE-L"), (COFFEE, "12.00", None)])
    _issue_with_skus(ledger, counter, B, [(COFFEE, "500.00", "HZ-ONLY-SKU")])
    add_operator("hq", "--all")
    add_operator("sh-manager", "--stores", A)
    yield
    wiring.reset()


def _row(sku: str, lines: int, amount: str, share: str, store: str | None = None) -> str:
    cells = ([store] if store else []) + [sku]
    return (
        "<tr>"
        + "".join(f"<td>{c}</td>" for c in cells)
        + (f'<td class="num">{lines}</td><td class="num">{amount}</td><td class="num">{share}</td></tr>')
    )


def test_the_page_shows_the_share_by_sku_escaped(client: Any, sku_world: None) -> None:
    token = session_of(client, "hq")
    r = client.http.get(f"/admin?store={A}", headers={"Cookie": f"einvoice_session={token}"})
    assert r.status_code == 200
    page = r.body.decode()
    assert page.count("<svg") == 4 and "<script" not in page  # the hostile SKU is text, in the table and chart
    hostile = "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&amp;"
    assert page.count(hostile) == 2  # the table's cell and the chart label's <title>; the label itself is cut
    assert "&lt;script&gt;alert(1)&lt;/scrip…</text>" in page
    assert _row("LATTE-L", 2, "¥70.00", "70.0 %") in page
    assert _row(hostile, 1, "¥18.00", "18.0 %") in page
    assert _row("(no sku)", 1, "¥12.00", "12.0 %") in page
    assert "HZ-ONLY-SKU" not in page  # the store's page: its own SKUs only
    chain = client.http.get("/admin", headers={"Cookie": f"einvoice_session={token}"}).body.decode()
    assert _row("HZ-ONLY-SKU", 1, "¥500.00", "100.0 %", store=B) in chain  # per store, on the chain's page
    assert _row("LATTE-L", 2, "¥70.00", "70.0 %", store=A) in chain
    assert _row("HZ-ONLY-SKU", 1, "¥500.00", "83.3 %") in chain  # the chain: 500 of 600


def test_another_stores_operator_does_not_see_its_skus(client: Any, sku_world: None) -> None:
    token = session_of(client, "sh-manager")
    mine = client.http.get("/admin", headers={"Cookie": f"einvoice_session={token}"})
    assert mine.status_code == 200
    assert "HZ-ONLY-SKU" not in mine.body.decode() and _row("LATTE-L", 2, "¥70.00", "70.0 %") in mine.body.decode()
    other = client.http.get(f"/admin?store={B}", headers={"Cookie": f"einvoice_session={token}"})
    assert other.status_code == 404 and "HZ-ONLY-SKU" not in other.body.decode()


def test_the_sku_counters_stay_bounded_in_dynamodb(stack: Any) -> None:
    """The real adapter on moto: 600 distinct SKUs in one day keep one item of ≤ 4 attributes a slot,
    every SKU read back by name exact, the rest in ``(other)``, the sums exact."""
    from chalicelib.adapters import aws
    from chalicelib.adapters.counters import DynamoCounters
    from chalicelib.config import settings
    from chalicelib.domain import counters as c

    port = DynamoCounters(settings().ledger_table)
    for start in range(0, 600, 50):
        skus = tuple((f"SKU-{i:04d}", 1, i) for i in range(start, start + 50))
        port.add(c.CounterDelta("s-bound", "2026-12-02", "issued", 0, skus=skus))
    [day] = port.days("s-bound", "2026-12-01", "2026-12-03")
    named = {k: v for k, v in day.skus.items() if k != c.OTHER_SKU}
    assert 0 < len(named) <= c.SKU_SLOTS and all(v == (1, int(k[4:])) for k, v in named.items())
    assert sum(n for n, _ in day.skus.values()) == 600 and sum(f for _, f in day.skus.values()) == sum(range(600))
    item = aws.client("dynamodb").get_item(
        TableName=settings().ledger_table, Key={"pk": {"S": "counters#s-bound"}, "sk": {"S": "day#2026-12-02"}}
    )["Item"]
    assert len(item) <= 3 + 4 * c.SKU_SLOTS


def test_admin_routes_are_not_shadowed_by_the_catch_alls(client: Any) -> None:
    import app as app_module

    assert client.http.get("/admin/login").status_code == 200
    assert "/{p1}/{p2}" in app_module.app.routes  # the catch-all exists, and yet the literal route answered
    assert client.http.get("/nothing/here").status_code == 404
