"""换开 end to end: an issued invoice's title changed (the buyer's title form, or
``einvoice invoices retitle``) becomes a full red reversal plus a new blue with the new title — the
real worker on moto and the HTTP tax sandbox (``tests/adapters/test_red_sandbox.py``'s stack, reused).

The sandbox's admin view (``GET /admin/invoices``) is the judge: the old blue reversed in full by one
red invoice, one new blue under the new title; the customer's link (the old key) says 换开处理中 until
the new invoice is issued, then shows it.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from chalicelib import wiring
from chalicelib.domain.models import BuyerType, InvoiceBuyer, Store
from chalicelib.domain.order_keys import reissue_key, retitle_refund_key
from chalicelib.services.links import LinkView
from chalicelib.services.title_request import Outcome, TitleForm, TitleRequests
from tests.adapters.test_red_sandbox import (  # the red flow's module stack, shared
    Red,
    env,  # noqa: F401 - a fixture
)
from tests.adapters.test_worker_sandbox import HANGZHOU, SHANGHAI

TITLE, TAX_ID = "上海买方贸易有限公司", "91310115MA1K4ABC3E"  # a valid GB 32100 check character
D = Decimal


@pytest.fixture(scope="module")
def red(env: Any) -> Red:  # noqa: F811 - the shared fixture
    return Red(env)


def issued_blue(red: Red, store: Store) -> str:
    blue = red.order(store, buyer=InvoiceBuyer(name="个人", type=BuyerType.INDIVIDUAL, email="li@example.com"))
    red.run(blue)
    assert red.status(blue) == "issued"
    return blue


def page(key: str) -> str:
    from chalice.test import Client

    import app as app_module

    link = wiring.links().issue(key.split(":", maxsplit=1)[0], key, now=time.time(), ttl_days=30)
    with Client(app_module.app, stage_name="local") as client:
        body: str = client.http.get(f"/i/{link.token}", headers={"accept": "text/html"}).body.decode()
    return body


def finish(red: Red, blue: str) -> str:
    """Run the red reversal, then the new blue, on the worker; the new blue's key."""
    number = red.fields(blue)["invoice_number"]
    refund = retitle_refund_key(blue, number)
    red.run(refund)
    assert red.status(refund) == "red_issued"
    new = reissue_key(blue)
    assert red.status(blue) == "reissued" and red.fields(blue)["reissue_key"] == new
    red.run(new)
    assert red.status(new) == "issued"
    return new


def check_sandbox(red: Red, blue: str, new: str) -> None:
    [old] = red.admin(order_key=blue)
    [reissued] = red.admin(order_key=new)
    assert old["buyer_name"] == "个人" and (reissued["buyer_name"], reissued["buyer_tax_id"]) == (TITLE, TAX_ID)
    assert D(reissued["total"]) == D(old["total"]) == D("159.00")
    [reversal] = red.reds(blue)  # one red invoice, the whole blue
    assert -D(reversal["total"]) == D("159.00")


@pytest.mark.parametrize("store", [SHANGHAI, HANGZHOU], ids=["sta", "nuonuo"])
def test_the_title_form_after_issue_reverses_and_reissues(red: Red, store: Store) -> None:
    blue = issued_blue(red, store)
    retitle = wiring.make_retitle(red.ledger, red.queue)
    requests = TitleRequests(
        ledger=red.ledger,
        stores=red.registry,
        taxcodes=None,  # type: ignore[arg-type]  # not reached after issue
        fix=None,  # type: ignore[arg-type]
        retitle=retitle.from_title_change,
    )
    until = time.time() + 3600
    link = LinkView(token_hash="t", order_key=blue, store_id=store.store_id, expires_at=until, form_key="k")
    assert requests.submit(link, TitleForm.of(TITLE, TAX_ID), now=time.time()).outcome is Outcome.CHANGE_REQUESTED
    assert red.status(blue) == "reissuing"
    assert "换开处理中" in page(blue)
    new = finish(red, blue)
    check_sandbox(red, blue, new)
    shown = page(blue)  # the old link shows the new invoice, the old one as reversed
    assert red.fields(new)["invoice_number"] in shown and red.fields(blue)["invoice_number"] in shown
    assert TITLE in shown and "已冲红" in shown and "换开处理中" not in shown
    # asked again: nothing more happens (exactly once)
    assert retitle.request(blue, TITLE, TAX_ID).step.value == "reissued"
    red.step()
    assert len(red.admin(order_key=new)) == 1 and len(red.reds(blue)) == 1


def test_the_command_line_checks_the_title_then_retitles(red: Red) -> None:
    from typer.testing import CliRunner

    from infra.cli_app import application

    blue = issued_blue(red, SHANGHAI)
    cli = CliRunner()
    refused = cli.invoke(application(), ["invoices", "retitle", blue, "--title", TITLE])  # a company: no tax id
    assert refused.exit_code == 2 and "tax_id" in refused.output + (refused.stderr or "")
    assert red.status(blue) == "issued"
    done = cli.invoke(application(), ["invoices", "retitle", blue, "--title", TITLE, "--tax-id", TAX_ID])
    assert done.exit_code == 0, done.output
    assert "换开" in done.output and TAX_ID not in done.output and "BC3E" in done.output  # the tax id masked
    assert red.status(blue) == "reissuing"
    # the CLI queued on the stack's own issue queue; this module's worker reads a simulated one
    red.queue.send(retitle_refund_key(blue, red.fields(blue)["invoice_number"]), "refunded")
    new = finish(red, blue)
    check_sandbox(red, blue, new)
