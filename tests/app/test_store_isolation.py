"""Store isolation (issue 12 item 4): one store's API key, link or admin session reaches no other store's data.

Two stores, A and B, each with issued invoices (B's partly reversed by a red invoice), API keys made by
the CLI, a customer link of each, and operators whose store sets are {A} and {A, B}. Every route is
read from the app itself (as ``test_admin_routes_guarded.py`` does), so a route added later is covered:

- **API key** — A's key on every route that names a store, with B's ids (order ids, order keys, invoice
  numbers, in the path and in the query), gets the answer of an order or store that does not exist;
  B's data never appears in the answer.
- **link** — A's token, on every route under ``/i/{token}`` and every method it serves, with B's ids
  in the query and in the title form, shows A's invoice only and changes nothing of B's.
- **admin session** — the {A} operator, on every admin route, naming B in the query and the body, gets
  a 403/404 where the route takes a store and never B's data; the "all stores" views hold no B data;
  the {A, B} operator sees B (so the checks can fail).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest

import app as app_module
from tests.app.conftest import ROOT, signed, standard_event
from tests.support import customer as support
from tests.support import invoices
from tests.support.admin_client import add_operator, cli, session_of
from tests.support.customer import order_record

#: One stack and one in-process app for the module.
customer_stack = support.customer_stack
app_client = support.app_client

A, B = "demo-shanghai", "demo-hangzhou"
NOBODY = "no-such-store"
COFFEE = "3070401000000000000"
#: Reachable without a session by design (test_admin_routes_guarded.py refuses the rest without one).
OPEN = {("/admin/login", "GET"), ("/admin/login", "POST"), ("/admin/logout", "POST")}
#: The admin routes that take a store (in ``?store=`` or the body's ``store_id``): B is refused there.
TAKES_A_STORE = {("/admin", "GET"), ("/admin/api/dashboard", "GET"), ("/admin/api/red/batch", "POST")}
FORM = {"content-type": "application/x-www-form-urlencoded"}


@dataclass
class Store:
    store_id: str
    key: str = ""  # the API key
    order_ids: list[str] = field(default_factory=list)
    order_keys: list[str] = field(default_factory=list)
    numbers: list[str] = field(default_factory=list)  # blue and red invoice numbers
    token: str = ""  # a customer link to its first order
    pdf_key: str = ""

    def data(self) -> list[str]:
        """What must never appear in an answer to another store's credentials."""
        return [*self.order_ids, *self.order_keys, *self.numbers, *([self.pdf_key] if self.pdf_key else [])]


@dataclass
class World:
    a: Store
    b: Store
    names: dict[str, list[str]]  # store id → its display names (store, seller)
    sessions: dict[str, str]  # operator → session token


def _served(prefix: str = "/") -> list[tuple[str, str]]:
    """Every (path, method) the app serves under ``prefix`` (not the 405 / catch-all 404 answers)."""
    found = []
    for path, methods in app_module.app.routes.items():
        if not path.startswith(prefix) or path.startswith("/{"):
            continue
        for method, entry in methods.items():
            if not entry.view_name.startswith(("method_not_allowed", "customer_not_allowed", "not_found")):
                found.append((path, method))
    return sorted(found)


def _issue_pdf_record(env: dict[str, str], store_id: str) -> tuple[str, str, str]:
    """An issued order with its PDF in the bucket, for the customer's link: (key, number, pdf key)."""
    from chalicelib import wiring

    key, number = order_record(env, store_id=store_id)
    assert number is not None
    record = wiring.ledger().get_order(key)
    assert record is not None
    return key, number, str(record.text("pdf_key"))


@pytest.fixture(scope="module")
def world(customer_stack: Any, app_client: Any) -> Iterator[World]:
    from chalicelib import wiring
    from chalicelib.adapters.secrets import SecretStore
    from chalicelib.domain.order_keys import parse_order_key
    from chalicelib.domain.order_state import OrderStatus
    from chalicelib.domain.red_allocation import RefundBook

    env = customer_stack.env
    for name, value in json.loads((ROOT / "examples" / "secrets.local.json").read_text()).items():
        if not name.startswith("_"):  # the example stores' secrets (Nuonuo credentials …), as conftest.seeded
            SecretStore().put(name, json.dumps(value))
    ledger, counter = wiring.ledger(), wiring.invoice_counter()
    stores = {s: Store(s) for s in (A, B)}
    names: dict[str, list[str]] = {}
    for s in stores.values():
        run = cli("stores", "api-key", s.store_id)
        assert run.exit_code == 0, run.output
        s.key = run.stdout.strip()
        registered = wiring.stores().get(s.store_id)
        names[s.store_id] = [registered.name, registered.seller.name]
        # counted (the dashboard's counters) and linked (the customer's page) issued orders
        for lines in ([(COFFEE, "30.00")], [(COFFEE, "500.00")]):
            order_id, key = invoices.issue(ledger, counter, s.store_id, lines)
            found = ledger.get_order(key)
            assert found is not None
            s.order_ids.append(order_id)
            s.order_keys.append(key)
            s.numbers.append(str(found.text("invoice_number")))
        key, number, pdf_key = _issue_pdf_record(env, s.store_id)
        s.order_ids.insert(0, parse_order_key(key).order_id)
        s.order_keys.insert(0, key)
        s.numbers.insert(0, number)
        s.pdf_key = pdf_key
        s.token = wiring.links().issue(s.store_id, key, now=time.time(), ttl_days=90).token
        SecretStore().put(
            f"einvoice/{s.store_id}/webhook/standard",
            json.dumps({"secrets": [signing_secret(s.store_id)]}),
        )
    # B's first issued order partly reversed by a red invoice (the after-sale refund book)
    b = stores[B]
    red = "29" + str(uuid.uuid4().int)[:18]
    refund_key = f"{b.order_keys[1]}:refund:R1"
    book = RefundBook().with_entry(refund_key, {1: Decimal("100.00")}).with_red_invoice(refund_key, red)
    assert ledger.revise(
        b.order_keys[1], revision=0, statuses=frozenset({OrderStatus.ISSUED}), now=time.time(), fields=book.fields()
    ).ok
    b.numbers.append(red)
    suffix = uuid.uuid4().hex[:6]
    add_operator(f"iso-a-{suffix}", "--stores", A)
    add_operator(f"iso-ab-{suffix}", "--stores", f"{A},{B}")
    sessions = {who: session_of(app_client, f"iso-{who}-{suffix}") for who in ("a", "ab")}
    yield World(stores[A], stores[B], names, sessions)


def signing_secret(store_id: str) -> str:
    import base64
    import hashlib

    return "whsec_" + base64.b64encode(hashlib.sha256(store_id.encode()).digest()).decode()


def _text(response: Any) -> str:
    return str(response.body.decode("utf-8", "replace"))


def _leaks(response: Any, world: World, store: Store) -> list[str]:
    text = _text(response) + json.dumps(dict(response.headers))
    found = [d for d in store.data() if d in text]
    found += [n for n in world.names[store.store_id] if n in text]
    return found


def _concrete(path: str, *, store: str, order_id: str, token: str = "x" * 32) -> str:
    return (
        path.replace("{store_id}", store)
        .replace("{order_id}", order_id)
        .replace("{platform}", "standard")
        .replace("{token}", token)
        .replace("{page}", "orders")
    )


# --- API keys ---------------------------------------------------------------------------------------
STORE_ROUTES = [r for r in _served() if "{store_id}" in r[0]]


def test_the_routes_naming_a_store_are_found() -> None:
    assert ("/stores/{store_id}/orders/{order_id}/invoice", "GET") in STORE_ROUTES
    assert ("/webhooks/{platform}/{store_id}", "POST") in STORE_ROUTES


def test_own_key_reads_own_invoices(app_client: Any, world: World) -> None:
    for s in (world.a, world.b):  # the positive control: the same request with the right key answers
        for order_id, number in zip(s.order_ids, s.numbers, strict=False):
            r = app_client.http.get(
                f"/stores/{s.store_id}/orders/{order_id}/invoice", headers={"Authorization": f"Bearer {s.key}"}
            )
            assert r.status_code == 200, r.body
            assert json.loads(r.body)["invoice_number"] == number


def _invoice(client: Any, key: str, store: str, order_id: str, query: str = "") -> Any:
    path = f"/stores/{store}/orders/{order_id}/invoice" + (f"?{query}" if query else "")
    return client.http.get(path, headers={"Authorization": f"Bearer {key}"})


@pytest.mark.parametrize("who", ["a", "b"])
def test_a_key_on_the_other_stores_ids_answers_as_for_nothing(app_client: Any, world: World, who: str) -> None:
    me, other = (world.a, world.b) if who == "a" else (world.b, world.a)
    nothing = _invoice(app_client, me.key, other.store_id, "NO-SUCH-ORDER")
    assert nothing.status_code == 404
    assert _invoice(app_client, me.key, NOBODY, "NO-SUCH-ORDER").body == nothing.body  # nor a store
    ids = [*other.order_ids, *other.order_keys, *other.numbers]
    queries = ["", "platform=standard", "files=1", f"store_id={other.store_id}", f"store={other.store_id}"]
    for ident in ids:
        for store in (other.store_id, me.store_id):  # the other store named in the path, or my own
            for query in queries:
                r = _invoice(app_client, me.key, store, ident.replace(":", "%3A"), query)
                assert (r.status_code, r.body) == (404, nothing.body), (store, ident, query, r.body)
                assert not _leaks(r, world, other)


@pytest.mark.parametrize(("path", "method"), STORE_ROUTES, ids=[f"{m} {p}" for p, m in STORE_ROUTES])
def test_a_key_on_every_route_naming_the_other_store_is_refused(
    app_client: Any, world: World, path: str, method: str
) -> None:
    """A's key as Bearer and X-Api-Key on each route with B's store id and ids: never a 2xx, never B's data."""
    for order_id in world.b.order_ids[:2]:
        url = _concrete(path, store=B, order_id=order_id) + f"?order_id={order_id}&store_id={B}"
        headers = {
            "Authorization": f"Bearer {world.a.key}",
            "X-Api-Key": world.a.key,
            "content-type": "application/json",
        }
        body = json.dumps({"store_id": B, "order_id": order_id}).encode() if method != "GET" else None
        r = app_client.http.request(method, url, headers=headers, body=body)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.body)
        assert not _leaks(r, world, world.b), (path, _leaks(r, world, world.b))


def test_a_webhook_signed_with_a_stores_secret_is_refused_on_the_other_store(app_client: Any, world: World) -> None:
    order_id = world.b.order_ids[0]  # a re-delivery of B's order would answer its key and status
    body, headers = signed(standard_event(order_id), secret=signing_secret(A))
    r = app_client.http.post(f"/webhooks/standard/{B}", headers=headers, body=body)
    assert r.status_code == 401 and not _leaks(r, world, world.b)
    body, headers = signed(standard_event(order_id), secret=signing_secret(B))
    genuine = app_client.http.post(f"/webhooks/standard/{B}", headers=headers, body=body)
    assert genuine.status_code == 200 and world.b.order_keys[0] in _text(genuine)  # the control


# --- customer links ---------------------------------------------------------------------------------
LINK_ROUTES = _served("/i/")


def test_the_link_routes_are_found() -> None:
    assert {("/i/{token}", "GET"), ("/i/{token}/pdf", "GET"), ("/i/{token}/title", "POST")} <= set(LINK_ROUTES)


def _b_query(world: World) -> str:
    b = world.b
    return urlencode(
        {
            "order_id": b.order_ids[0],
            "order_key": b.order_keys[0],
            "invoice_number": b.numbers[0],
            "store_id": B,
            "token": b.token,
        }
    )


@pytest.mark.parametrize(("path", "method"), LINK_ROUTES, ids=[f"{m} {p}" for p, m in LINK_ROUTES])
def test_a_link_reaches_its_own_invoice_only(app_client: Any, world: World, path: str, method: str) -> None:
    url = _concrete(path, store=A, order_id="", token=world.a.token) + "?" + _b_query(world)
    if method == "GET":
        r = app_client.http.get(url, headers={"accept": "text/html"})
    else:  # the title form, B's ids beside the fields (a stale form token: refused before any write)
        fields = {
            "form_token": "0" * 64,
            "title": "某某公司",
            "tax_id": "",
            "order_key": world.b.order_keys[0],
            "invoice_number": world.b.numbers[0],
            "store_id": B,
        }
        r = app_client.http.request(method, url, headers=FORM, body=urlencode(fields).encode())
    assert r.status_code < 500, (path, r.status_code)
    assert not _leaks(r, world, world.b), (path, _leaks(r, world, world.b))
    if path == "/i/{token}":
        assert world.a.numbers[0] in _text(r) and world.names[A][1] in _text(r)
    if path == "/i/{token}/pdf":
        assert r.status_code == 302 and world.a.pdf_key in r.headers["Location"]


def test_the_title_form_with_the_other_stores_ids_changes_only_its_own_order(
    app_client: Any, customer_stack: Any, world: World
) -> None:
    from chalicelib import wiring
    from tests.support.customer import valid_credit_code

    key, _number, _pdf = _issue_pdf_record(customer_stack.env, A)
    token = wiring.links().issue(A, key, now=time.time(), ttl_days=90).token
    before = {k: wiring.ledger().get_order(k) for k in world.b.order_keys}
    mine_before = wiring.ledger().get_order(key)
    page = _text(app_client.http.get(f"/i/{token}/title"))
    found = re.search(r'name="form_token" value="([0-9a-f]+)"', page)
    assert found, page
    fields = {
        "form_token": found.group(1),
        "title": "上海某某科技有限公司",
        "tax_id": valid_credit_code(),
        "order_key": world.b.order_keys[0],
        "invoice_number": world.b.numbers[0],
        "store_id": B,
    }
    r = app_client.http.post(f"/i/{token}/title?" + _b_query(world), headers=FORM, body=urlencode(fields).encode())
    assert r.status_code == 303, r.body  # the request is taken: for A's order
    assert {k: wiring.ledger().get_order(k) for k in world.b.order_keys} == before
    assert wiring.ledger().get_order(key) != mine_before  # A's own order took the request


# --- admin sessions ---------------------------------------------------------------------------------
ADMIN = [r for r in _served("/admin") if r not in OPEN]


def test_the_admin_routes_that_take_a_store_are_served() -> None:
    assert set(ADMIN) >= TAKES_A_STORE


def _admin(  # noqa: PLR0917 - a test helper
    client: Any, world: World, who: str, path: str, method: str, store: str, items: list[str], *, dry_run: bool = False
) -> Any:
    token = world.sessions[who]
    cookie = {"Cookie": f"einvoice_session={token}"}
    me = json.loads(client.http.get("/admin/api/me", headers=cookie).body)
    url = _concrete(path, store=store, order_id=items[0]) + "?" + urlencode({"store": store, "days": 30})
    if method == "GET":
        return client.http.get(url, headers=cookie)
    body: dict[str, Any] = {"store_id": store, "items": items, "reason": "01", "dry_run": dry_run, "csrf": me["csrf"]}
    if path.startswith("/admin/api/"):
        headers = {**cookie, "content-type": "application/json", "X-CSRF-Token": me["csrf"]}
        return client.http.request(method, url, headers=headers, body=json.dumps(body).encode())
    form = urlencode({k: json.dumps(v) if isinstance(v, list) else str(v) for k, v in body.items()})
    return client.http.request(method, url, headers={**cookie, **FORM}, body=form.encode())


@pytest.mark.parametrize(("path", "method"), ADMIN, ids=[f"{m} {p}" for p, m in ADMIN])
def test_an_operator_of_a_never_reaches_b(app_client: Any, world: World, path: str, method: str) -> None:
    from chalicelib import wiring

    before = {k: wiring.ledger().get_order(k) for k in world.b.order_keys}
    items = [world.b.order_keys[1], world.b.numbers[1]]
    r = _admin(app_client, world, "a", path, method, B, items)
    assert r.status_code < 500, (path, r.status_code, r.body)
    if (path, method) in TAKES_A_STORE:
        assert r.status_code in (403, 404), (path, r.status_code, r.body)
    assert not _leaks(r, world, world.b), (path, _leaks(r, world, world.b))
    # the same with the operator's own store named: B's ids in the items are still not B's to touch
    mine = _admin(app_client, world, "a", path, method, A, items)
    assert mine.status_code < 500 and not _leaks_beyond_items(mine, world, items)
    assert {k: wiring.ledger().get_order(k) for k in world.b.order_keys} == before  # nothing of B changed


def _leaks_beyond_items(response: Any, world: World, items: list[str]) -> list[str]:
    """B's data in an answer other than the items the request itself sent (a batch echoes its items)."""
    text = _text(response)
    for item in items:
        text = text.replace(item, "")
    found = [d for d in world.b.data() if d in text]
    return found + [n for n in world.names[B] if n in text]


def test_a_red_batch_treats_the_other_stores_items_as_unknown(app_client: Any, world: World) -> None:
    """With its own store named, B's real order key answers as a made-up B key, B's invoice number as a
    made-up number: the operator learns nothing of B."""
    real = [world.b.order_keys[1], world.b.numbers[1]]
    made_up = [f"{B}:standard:NO-SUCH-ORDER", "2" + "0" * 19]
    for who in ("a", "ab"):
        got = json.loads(_admin(app_client, world, who, "/admin/api/red/batch", "POST", A, real).body)
        control = json.loads(_admin(app_client, world, who, "/admin/api/red/batch", "POST", A, made_up).body)
        assert got["queued"] == 0 and control["queued"] == 0
        strip = [
            {k: v for k, v in row.items() if k not in ("item", "order_key", "invoice_number")} for row in got["results"]
        ]
        assert strip == [
            {k: v for k, v in row.items() if k not in ("item", "order_key", "invoice_number")}
            for row in control["results"]
        ], (got, control)


@pytest.mark.parametrize("path", ["/admin", "/admin/api/dashboard"])
def test_the_all_stores_views_hold_only_the_operators_stores(app_client: Any, world: World, path: str) -> None:
    def view(who: str) -> Any:
        r = app_client.http.get(f"{path}?days=30", headers={"Cookie": f"einvoice_session={world.sessions[who]}"})
        assert r.status_code == 200, r.body
        return r

    only_a, both = view("a"), view("ab")
    assert B not in _text(only_a) and not _leaks(only_a, world, world.b)
    assert not any(n in _text(only_a) for n in world.names[B])
    assert A in _text(only_a)
    assert B in _text(both) and any(n in _text(both) for n in world.names[B])  # the control: B is seen
    if path == "/admin/api/dashboard":
        stores = {s["store_id"] for s in json.loads(only_a.body)["stores"]}
        assert stores == {A}
        assert {s["store_id"] for s in json.loads(both.body)["stores"]} == {A, B}
        a_total = json.loads(only_a.body)["total"]
        scoped = json.loads(
            app_client.http.get(
                f"{path}?days=30&store={A}", headers={"Cookie": f"einvoice_session={world.sessions['a']}"}
            ).body
        )["total"]
        assert a_total == scoped  # the "all" total of {A} is A's alone


def test_the_operator_of_both_reaches_b_where_the_operator_of_a_does_not(app_client: Any, world: World) -> None:
    for path in ("/admin", "/admin/api/dashboard"):
        assert _admin(app_client, world, "ab", path, "GET", B, ["x"]).status_code == 200
        assert _admin(app_client, world, "a", path, "GET", B, ["x"]).status_code == 404
    plan = _admin(app_client, world, "ab", "/admin/api/red/batch", "POST", B, [world.b.numbers[0]], dry_run=True)
    assert plan.status_code == 200, plan.body  # B's own invoice, B named: planned for the {A, B} operator
    assert json.loads(plan.body)["count"] == 1, plan.body


# --- link tokens: entropy, hashing, expiry and revocation at the route --------------------------------
# (the use case's own tests: tests/app/test_customer_links.py — ≥ 128 random bits, only the SHA-256
# stored, the TTL's last second live; tests/contract/test_link_store_contract.py — both link stores)
def test_the_ledger_holds_only_the_hash_of_each_link_token(world: World) -> None:
    import base64

    from chalicelib.adapters import aws
    from chalicelib.adapters.links import LINK_PREFIX
    from chalicelib.config import settings
    from chalicelib.services.links import TOKEN_BYTES, token_hash

    items = aws.client("dynamodb").get_paginator("scan").paginate(TableName=settings().ledger_table)
    stored = repr([i for page in items for i in page["Items"]])
    for token in (world.a.token, world.b.token):
        assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) == TOKEN_BYTES >= 16  # ≥ 128 bits
        assert token not in stored
        assert repr(LINK_PREFIX + token_hash(token)) in stored


def test_a_link_expires_at_its_ttl_on_the_routes_clock(
    app_client: Any, customer_stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from chalicelib import wiring
    from chalicelib.routes import customer as customer_routes

    key, _number, _pdf = _issue_pdf_record(customer_stack.env, A)
    issued_at = float(int(time.time()))  # whole seconds, as the link record keeps them
    link = wiring.links().issue(A, key, now=issued_at, ttl_days=1)
    for at, status in (
        (issued_at, 200),
        (link.expires_at - 1, 200),
        (link.expires_at, 410),
        (link.expires_at + 1, 410),
    ):
        monkeypatch.setattr(customer_routes, "time", SimpleNamespace(time=lambda at=at: at))  # the route's clock
        for path in (f"/i/{link.token}", f"/i/{link.token}/pdf", f"/i/{link.token}/title"):
            r = app_client.http.get(path, headers={"accept": "text/html"})
            assert (r.status_code == 410) == (status == 410), (at - issued_at, path, r.status_code)
            if status == 410:
                assert "已过期" in _text(r)


def test_a_link_revoked_through_the_cli_answers_410_on_every_route(app_client: Any, customer_stack: Any) -> None:
    from chalicelib import wiring

    key, _number, _pdf = _issue_pdf_record(customer_stack.env, A)
    link = wiring.links().issue(A, key, now=time.time(), ttl_days=90)
    assert app_client.http.get(f"/i/{link.token}").status_code == 200
    run = cli("links", "revoke", link.token)
    assert run.exit_code == 0, run.output
    for path in (f"/i/{link.token}", f"/i/{link.token}/pdf", f"/i/{link.token}/title"):
        r = app_client.http.get(path, headers={"accept": "text/html"})
        assert r.status_code == 410 and "已失效" in _text(r), (path, r.status_code)
    r = app_client.http.post(f"/i/{link.token}/title", headers=FORM, body=b"form_token=x&title=y&tax_id=")
    assert r.status_code == 410
