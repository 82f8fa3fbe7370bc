"""GET/POST /i/{token}/title: the buyer's own company title, validated, CSRF-safe, by order status."""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import urlencode

from tests.support import customer as support
from tests.support.customer import STORE, order_record, valid_credit_code

#: One stack and one in-process app for the module (orders and links are unique per test).
customer_stack = support.customer_stack
app_client = support.app_client

FORM = {"content-type": "application/x-www-form-urlencoded"}


def token_for(key: str) -> str:
    from chalicelib import wiring

    return wiring.links().issue(STORE, key, now=time.time(), ttl_days=90).token


def form_token(client: Any, token: str) -> str:
    page = client.http.get(f"/i/{token}/title").body.decode()
    found = re.search(r'name="form_token" value="([0-9a-f]+)"', page)
    assert found, page
    return found.group(1)


def submit(client: Any, token: str, title: str, tax_id: str, csrf: str | None = None) -> Any:
    body = urlencode({"form_token": csrf or form_token(client, token), "title": title, "tax_id": tax_id})
    return client.http.post(f"/i/{token}/title", body=body.encode(), headers=FORM)


def record(stack: Any, key: str) -> Any:
    from chalicelib.adapters.ledger import Ledger

    return Ledger(stack.env["LEDGER_TABLE"]).get_order(key)


def test_a_bad_tax_id_is_shown_beside_its_field_and_nothing_is_written(app_client: Any, customer_stack: Any) -> None:
    key, _ = order_record(customer_stack.env)
    token = token_for(key)
    before = record(customer_stack, key)
    r = submit(app_client, token, "上海某某科技有限公司", "91310115MA1K4ABCI2")  # I is not in GB 32100
    assert r.status_code == 422
    page = r.body.decode()
    tax_field = page.index('id="tax_id"')
    error = page.index('id="tax_id-error-1"')
    assert tax_field < error and "统一社会信用代码不能包含字母I" in page and "GB 32100" in page
    assert 'value="上海某某科技有限公司"' in page  # what was typed is kept
    assert 'id="title-error-1"' not in page
    assert record(customer_stack, key) == before


def test_an_empty_title_and_tax_id_are_two_field_errors(app_client: Any, customer_stack: Any) -> None:
    key, _ = order_record(customer_stack.env)
    token = token_for(key)
    page = submit(app_client, token, "  ", "").body.decode()
    assert 'id="title-error-1"' in page and "购买方名称不能为空" in page
    assert 'id="tax_id-error-1"' in page and "企业购买方须提供纳税人识别号" in page


def test_after_a_personal_invoice_the_change_is_recorded_for_the_after_sale_flow(
    app_client: Any, customer_stack: Any
) -> None:
    key, _ = order_record(customer_stack.env)
    token = token_for(key)
    code = valid_credit_code()
    r = submit(app_client, token, "上海某某科技有限公司", code.lower())
    assert r.status_code == 303 and r.headers["Location"] == f"/i/{token}?done=change_requested"
    change = json.loads(record(customer_stack, key).fields["title_change"])
    assert change["title"] == "上海某某科技有限公司" and change["tax_id"] == code
    assert change["stage"] == "after_issue" and change["source"] == "link" and change["requested_at"]
    # the 换开 starts at once (chalicelib/services/retitle.py): the blue is being reversed and re-issued
    assert record(customer_stack, key).status.value == "reissuing"
    page = app_client.http.get(r.headers["Location"]).body.decode()
    assert "已提交换开申请" in page


def test_before_issuing_the_order_is_issued_with_that_title(app_client: Any, customer_stack: Any) -> None:
    key, _ = order_record(customer_stack.env, status="queued")
    token = token_for(key)
    code = valid_credit_code()
    r = submit(app_client, token, "上海某某科技有限公司", code)
    assert r.status_code == 303 and r.headers["Location"].endswith("?done=applied")
    after = record(customer_stack, key)
    assert after.status.value == "queued"
    buyer = after.payload["order"]["buyer"]
    assert buyer["name"] == "上海某某科技有限公司" and buyer["tax_id"] == code and buyer["type"] == "company"
    assert after.payload["event"]["buyer"]["tax_id"] == code
    assert json.loads(after.fields["title_change"])["stage"] == "before_issue"


def test_a_rejected_order_is_corrected_with_the_title_and_queued(app_client: Any, customer_stack: Any) -> None:
    key, _ = order_record(customer_stack.env, status="rejected", buyer={"title": "某公司", "tax_id": "BAD ID"})
    assert record(customer_stack, key).status.value == "rejected"
    token = token_for(key)
    r = submit(app_client, token, "上海某某科技有限公司", valid_credit_code())
    assert r.status_code == 303 and r.headers["Location"].endswith("?done=applied"), r.body
    after = record(customer_stack, key)
    assert after.status.value == "queued" and after.fields["fixed_by"] == "buyer-link"
    assert after.payload["order"]["buyer"]["name"] == "上海某某科技有限公司"


def test_the_form_token_is_tied_to_the_link(app_client: Any, customer_stack: Any) -> None:
    key, _ = order_record(customer_stack.env)
    one, two = token_for(key), token_for(key)
    csrf_one = form_token(app_client, one)
    assert csrf_one != form_token(app_client, two)
    for csrf in (csrf_one, "0" * 32, ""):
        r = submit(app_client, two, "上海某某科技有限公司", valid_credit_code(), csrf=csrf or "x")
        assert r.status_code == 403 and "表单已过期" in r.body.decode()
    assert "title_change" not in record(customer_stack, key).fields


def test_the_form_token_lasts_the_hour_and_the_next() -> None:
    from chalicelib.services.links import LinkView

    view = LinkView("h" * 64, "s:p:o", "s", 0.0, "ab" * 32)
    shown = view.form_token(7_200.5)
    assert view.form_token_ok(shown, 7_200.5) and view.form_token_ok(shown, 10_799.0)
    assert not view.form_token_ok(shown, 14_400.0)
    assert not LinkView("h" * 64, "s:p:o", "s", 0.0, "cd" * 32).form_token_ok(shown, 7_200.5)


def test_the_form_is_plain_html_without_script(app_client: Any, customer_stack: Any) -> None:
    key, _ = order_record(customer_stack.env)
    page = app_client.http.get(f"/i/{token_for(key)}/title").body.decode()
    assert '<form method="post"' in page and "<script" not in page and "onclick" not in page
