"""GET /i/{token} (+ /pdf) through chalice.test.Client over moto: the page, its refusals, its headers."""

from __future__ import annotations

import time
import urllib.request
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.domain.order_state import OrderEvent, OrderStatus
from tests.support import customer as support
from tests.support.customer import PDF, STORE, order_record

#: One stack and one in-process app for the module (orders and links are unique per test).
customer_stack = support.customer_stack
app_client = support.app_client


def link_to(key: str, *, ttl_days: int = 90, now: float | None = None) -> Any:
    from chalicelib import wiring

    return wiring.links().issue(STORE, key, now=time.time() if now is None else now, ttl_days=ttl_days)


def get(client: Any, path: str) -> Any:
    return client.http.get(path, headers={"accept": "text/html"})


def text(r: Any) -> str:
    return r.body.decode("utf-8")


def test_an_issued_invoice_page_shows_seller_amount_number_status(app_client: Any, customer_stack: Any) -> None:
    key, number = order_record(customer_stack.env, amount="108.00")
    link = link_to(key)
    r = get(app_client, f"/i/{link.token}")
    assert r.status_code == 200
    page = text(r)
    assert "上海演示餐饮管理有限公司" in page
    assert "¥108.00" in page
    assert "壹佰零捌圆整" in page
    assert number and number in page
    assert "2027-01-15" in page
    assert "已开具" in page and "Issued" in page
    assert f'href="/i/{link.token}/pdf"' in page
    assert "<script" not in page


def test_every_page_carries_the_security_headers(app_client: Any, customer_stack: Any) -> None:
    key, _ = order_record(customer_stack.env)
    link = link_to(key)
    for path in (f"/i/{link.token}", "/i/" + "A" * 32, f"/i/{link.token}/title"):
        h = {k.lower(): v for k, v in get(app_client, path).headers.items()}
        csp = h["content-security-policy"]
        assert "default-src 'none'" in csp and "http" not in csp and "script-src" not in csp
        assert "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
        assert h["x-content-type-options"] == "nosniff"
        assert h["referrer-policy"] == "no-referrer"
        assert h["cache-control"] == "no-store"
        assert h["content-type"].startswith("text/html")


def test_the_inline_style_is_the_one_the_policy_allows(app_client: Any, customer_stack: Any) -> None:
    import base64
    import hashlib
    import re

    key, _ = order_record(customer_stack.env)
    r = get(app_client, f"/i/{link_to(key).token}")
    style = re.search(r"<style>(.*?)</style>", text(r), re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" in r.headers["Content-Security-Policy"]
    assert "http://" not in style.group(1) and "https://" not in style.group(1)


def test_the_download_is_a_redirect_to_a_short_lived_presigned_url_of_the_pdf(
    app_client: Any, customer_stack: Any
) -> None:
    key, _ = order_record(customer_stack.env)
    r = get(app_client, f"/i/{link_to(key).token}/pdf")
    assert r.status_code == 302
    location = r.headers["Location"]
    assert "X-Amz-Expires=300" in location and "X-Amz-Signature=" in location
    with urllib.request.urlopen(location, timeout=10) as pdf:
        assert pdf.read() == PDF


def test_a_pdf_not_stored_yet_is_being_prepared(app_client: Any, customer_stack: Any) -> None:
    key, _ = order_record(customer_stack.env, pdf=False)
    token = link_to(key).token
    page = text(get(app_client, f"/i/{token}"))
    assert "正在生成" in page and "/pdf" not in page
    r = get(app_client, f"/i/{token}/pdf")
    assert r.status_code == 202 and r.headers["Retry-After"] == "30"
    assert "正在生成" in text(r)


def test_an_order_still_being_issued_shows_so_without_a_number(app_client: Any, customer_stack: Any) -> None:
    key, _ = order_record(customer_stack.env, status="queued")
    page = text(get(app_client, f"/i/{link_to(key).token}"))
    assert "开具中" in page and "Being issued" in page
    assert get(app_client, f"/i/{link_to(key).token}/pdf").status_code == 202


def test_a_reversed_invoice_says_so_in_full_or_in_part(app_client: Any, customer_stack: Any) -> None:
    """The after-sale flow's refund book on the blue record (``red_allocation.RefundBook``)."""
    from chalicelib.adapters.ledger import Ledger
    from chalicelib.domain.red_allocation import RefundBook

    ledger = Ledger(customer_stack.env["LEDGER_TABLE"])
    for refunded, words in ((Decimal("30.00"), "部分冲红"), (Decimal("88.00"), "已冲红")):
        key, _ = order_record(customer_stack.env, amount="88.00")
        book = RefundBook().with_entry(f"{key}:refund:R1", {1: refunded}).with_red_invoice(f"{key}:refund:R1", "2" * 20)
        assert ledger.revise(
            key, revision=0, statuses=frozenset({OrderStatus.ISSUED}), now=time.time(), fields=book.fields()
        ).ok
        page = text(get(app_client, f"/i/{link_to(key).token}"))
        assert words in page, refunded
        assert 'id="download"' in page  # the blue invoice is still there to download


def test_expired_revoked_and_unknown_links_get_their_pages(app_client: Any, customer_stack: Any) -> None:
    from chalicelib import wiring

    key, _ = order_record(customer_stack.env)
    expired = link_to(key, ttl_days=1, now=time.time() - 2 * 86_400)
    revoked = link_to(key)
    assert wiring.links().revoke(revoked.token, now=time.time()) == 1
    cases = {
        f"/i/{expired.token}": (410, "已过期"),
        f"/i/{expired.token}/pdf": (410, "已过期"),
        f"/i/{revoked.token}": (410, "已失效"),
        f"/i/{revoked.token}/title": (410, "已失效"),
        "/i/" + "A" * 32: (404, "找不到"),  # well formed, never issued
        "/i/not-a-token": (404, "找不到"),  # forged shape: refused without a read
        f"/i/{revoked.token[:-1]}x": (404, "找不到"),
    }
    for path, (status, words) in cases.items():
        r = get(app_client, path)
        assert r.status_code == status, path
        body = text(r)
        assert words in body and "Traceback" not in body and r.headers["Content-Type"].startswith("text/html")


def test_a_link_whose_order_is_gone_is_404_and_a_failure_is_an_html_500(
    app_client: Any, customer_stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib import wiring

    assert get(app_client, f"/i/{link_to(f'{STORE}:standard:never-recorded').token}").status_code == 404

    def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret detail")

    key, _ = order_record(customer_stack.env)
    token = link_to(key).token
    monkeypatch.setattr(wiring.customer_page(), "page", boom)
    r = get(app_client, f"/i/{token}")
    assert r.status_code == 500
    assert "secret detail" not in text(r) and "Traceback" not in text(r) and "服务暂时不可用" in text(r)


def test_other_methods_are_405_and_literal_segments_win_over_the_catch_alls(
    app_client: Any, customer_stack: Any
) -> None:
    key, _ = order_record(customer_stack.env)
    token = link_to(key).token
    r = app_client.http.request("DELETE", f"/i/{token}")
    assert r.status_code == 405 and r.headers["Allow"] == "GET"
    assert app_client.http.request("PUT", f"/i/{token}/title").headers["Allow"] == "GET, POST"
    # /i/{token} is the page, not /{p1}/{p2}'s JSON 404; deeper unknown paths still are
    assert get(app_client, f"/i/{token}").status_code == 200
    other = get(app_client, f"/i/{token}/nothing")
    assert other.status_code == 404 and other.headers["Content-Type"].startswith("application/json")


def test_a_hostile_seller_and_buyer_name_are_escaped(app_client: Any, customer_stack: Any) -> None:
    from chalicelib.adapters.stores import StoreRegistry

    registry = StoreRegistry(customer_stack.env["STORES_TABLE"])
    store = registry.get(STORE)
    hostile = '<script>alert("s")</script>'
    registry.put(store.model_copy(update={"seller": store.seller.model_copy(update={"name": hostile})}))
    try:
        key, _ = order_record(customer_stack.env, buyer={"title": '<img src=x onerror="alert(1)">'})
        page = text(get(app_client, f"/i/{link_to(key).token}"))
    finally:
        registry.put(store)
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#34;s&#34;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page


def test_the_link_table_never_holds_the_token(app_client: Any, customer_stack: Any) -> None:
    from chalicelib.adapters import aws

    key, _ = order_record(customer_stack.env)
    link = link_to(key)
    items = aws.client("dynamodb").scan(TableName=customer_stack.env["LEDGER_TABLE"])["Items"]
    assert link.token not in repr(items)
    from chalicelib.services.links import token_hash

    digest = token_hash(link.token)
    link_items = [i for i in items if digest in i["pk"]["S"] + i["sk"]["S"]]
    assert {i["pk"]["S"] for i in link_items} == {f"link#{digest}", f"links#{key}"}
    for item in link_items:  # out of the ledger's indexes
        assert not {"store_id", "created_at", "due", "due_at"} & set(item)


def test_the_record_stays_issued(app_client: Any, customer_stack: Any) -> None:
    """Opening the page and downloading change nothing on the order."""
    from chalicelib.adapters.ledger import Ledger

    key, _ = order_record(customer_stack.env)
    token = link_to(key).token
    before = Ledger(customer_stack.env["LEDGER_TABLE"]).get_order(key)
    get(app_client, f"/i/{token}")
    get(app_client, f"/i/{token}/pdf")
    assert Ledger(customer_stack.env["LEDGER_TABLE"]).get_order(key) == before
    assert before is not None and before.status.value == OrderEvent.ISSUED.value
