"""A rejected order, corrected by the operator, is issued: the webhook (chalice.test.Client), the CLI
(``einvoice orders fix``), the worker (``app.worker``'s batch handler) and the tax sandbox, on moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib import config, wiring
from chalicelib.domain.order_keys import order_key
from chalicelib.sandbox import server as sandbox_server
from infra import cli
from tests.adapters.test_worker_sandbox import SECRETS, _env, fields, invoices, process, receive_records, sandbox_config
from tests.app.conftest import signed


@pytest.fixture()
def issuing(stack: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    """(settings, sandbox): the example stores and secrets, the worker pointed at a fresh sandbox."""
    with sandbox_server.start_sandbox(sandbox_config()) as sandbox:
        yield _env(stack, sandbox, monkeypatch, 0), sandbox
    wiring.reset()
    config.settings.cache_clear()


def test_a_corrected_rejected_order_is_issued_exactly_once(
    issuing: tuple[Any, Any], aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from chalice.test import Client

    import app as app_module

    settings, sandbox = issuing
    line = {"sku": "LATTE-L", "name": "拿铁咖啡（大杯）", "quantity": "1", "unit_price": "88.00", "total": "88.00"}
    buyer = {"title": "某公司", "tax_id": "12345", "type": "company"}
    event = {"type": "order.paid", "data": {"order_id": "E2E-1", "amount": "88.00", "lines": [line], "buyer": buyer}}
    body, headers = signed(event, secret=SECRETS["einvoice/demo-shanghai/webhook/standard"]["secrets"][0])
    app_module._ingest.cache_clear()
    with Client(app_module.app, stage_name="local") as client:
        r = client.http.post("/webhooks/standard/demo-shanghai", body=body, headers=headers)
    key = order_key("demo-shanghai", "standard", "E2E-1")
    assert r.status_code == 422 and r.json_body["order_key"] == key

    fix = ["orders", "fix", key, "--buyer-title", "上海示例科技有限公司", "--buyer-tax-id", "91350100M000100Y43"]
    assert cli.main(fix) == 0
    assert "queued for issuing" in capsys.readouterr().out

    assert process(receive_records(aws, settings)) == []
    [invoice] = invoices(sandbox, key)
    issued = fields(settings, key)
    assert issued["status"] == "issued" and issued["invoice_number"] == invoice["number"]
    assert (invoice["buyer_name"], invoice["buyer_tax_id"], invoice["total"]) == (
        "上海示例科技有限公司",
        "91350100M000100Y43",
        "88.00",
    )  # the corrected buyer is on the invoice
    assert json.loads(issued["fixed_changes"])["buyer.tax_id"]["to"] == "91350100M000100Y43"
