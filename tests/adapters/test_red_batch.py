"""Batch reversal end to end: the real worker, the ledger on moto and the HTTP tax sandbox (the stack of
``tests/adapters/test_red_sandbox.py``, one per module), the command line and the admin API.

What matters is on the sandbox's side (its admin view, ``GET /admin/invoices``): a dry run issues and
records nothing; a run reverses each blue invoice once, in full; a second run changes nothing.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chalicelib.domain.models import RedReason
from chalicelib.services.red_batch import RedBatch, batch_refund_id
from tests.adapters.test_red_sandbox import Red, env  # noqa: F401 (the module-scoped stack fixture)
from tests.adapters.test_worker_sandbox import HANGZHOU, SHANGHAI
from tests.support.admin_client import add_operator, cli, csrf_of, session_of

D = Decimal


@pytest.fixture(scope="module")
def issued(env: Any) -> tuple[Red, list[str]]:  # noqa: F811
    """Two blue invoices issued in each store (STA and Nuonuo)."""
    red = Red(env)
    blues = [red.order(SHANGHAI), red.order(SHANGHAI), red.order(HANGZHOU)]
    red.run(*blues)
    assert [red.status(b) for b in blues] == ["issued"] * 3
    return red, blues


def _batch(red: Red) -> RedBatch:
    return RedBatch(ledger=red.ledger, queue=red.queue, clock=red.clock.utc)


def _reds(red: Red) -> list[dict[str, Any]]:
    return [i for i in red.admin() if i["kind"] == "red"]


def test_a_dry_run_says_what_it_would_do_and_writes_nothing(issued: tuple[Red, list[str]], tmp_path: Path) -> None:
    red, blues = issued
    number = red.fields(blues[1])["invoice_number"]
    file = tmp_path / "items.csv"
    file.write_text(f"item\n{blues[0]}\n{number}\n{SHANGHAI.store_id}:standard:nope\n{'9' * 20}\nnot-a-key\n")
    before = len(_reds(red))
    run = cli("red", "batch", str(file), "--reason", "02", "--store", SHANGHAI.store_id, "--dry-run")
    assert run.exit_code == 0, run.output
    assert "2 invoice(s) to reverse, total 318.00 yuan (reason 02); 3 refused" in run.output
    assert "unknown" in run.output
    plan = _batch(red).plan([blues[0], number, "x"], RedReason.RETURN, store_id=SHANGHAI.store_id)
    for item in plan.to_reverse:
        assert red.ledger.get_order(item.refund_key) is None  # nothing recorded
    assert len(_reds(red)) == before  # nothing on the platform


def test_a_batch_reverses_each_invoice_once_and_a_second_run_changes_nothing(
    issued: tuple[Red, list[str]], tmp_path: Path
) -> None:
    red, blues = issued
    shanghai = blues[:2]
    items = [shanghai[0], red.fields(shanghai[1])["invoice_number"], "00000000000000000000"]
    batch = _batch(red)
    plan = batch.plan(items, RedReason.SERVICE_STOPPED, store_id=SHANGHAI.store_id)
    assert (len(plan.to_reverse), plan.total) == (2, D("318.00"))
    results = batch.run(plan)
    assert [r.outcome for r in results] == ["queued", "queued", "refused"]
    refunds = [r.refund_key for r in results[:2]]
    assert all(
        k.endswith(":refund:" + batch_refund_id(red.fields(b)["invoice_number"]))
        for k, b in zip(refunds, shanghai, strict=True)
    )
    red.run(*refunds, until={"red_issued"}, horizon=900)
    for blue in shanghai:
        assert red.red_total(blue) == D("159.00") == red.blue_total(blue)  # reversed in full, once
    platform = _reds(red)
    assert {i["blue_number"] for i in platform} >= {red.fields(b)["invoice_number"] for b in shanghai}

    # the second run: through the command line, with --yes and a result file; nothing changes
    file = tmp_path / "again.txt"
    file.write_text("\n".join(items) + "\n")
    out = tmp_path / "result.csv"
    run = cli("red", "batch", str(file), "--reason", "03", "--store", SHANGHAI.store_id, "--yes", "--out", str(out))
    assert run.exit_code == 0, run.output
    assert "0 invoice(s) to reverse" in run.output and "changes nothing" in run.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["outcome"] for r in rows] == ["unchanged", "unchanged", "refused"]
    assert _reds(red) == platform  # the sandbox's admin view: not one red invoice more
    assert [red.status(k) for k in refunds] == ["red_issued", "red_issued"]


def test_the_admin_api_runs_a_batch_for_the_operators_own_store_only(issued: tuple[Red, list[str]]) -> None:
    from chalice.test import Client

    import app as app_module

    red, blues = issued
    nuonuo_blue = blues[2]
    add_operator("batch-op", "--stores", HANGZHOU.store_id)
    with Client(app_module.app, stage_name="local") as client:
        token = session_of(client, "batch-op")
        headers = {
            "Content-Type": "application/json",
            "Cookie": f"einvoice_session={token}",
            "X-CSRF-Token": csrf_of(client, token),
        }

        def post(body: dict[str, Any], **extra: str) -> Any:
            return client.http.post("/admin/api/red/batch", headers={**headers, **extra}, body=json.dumps(body))

        body = {"store_id": HANGZHOU.store_id, "items": [nuonuo_blue], "reason": "01"}
        assert post(body, **{"X-CSRF-Token": "wrong"}).status_code == 403
        assert post({**body, "store_id": SHANGHAI.store_id, "items": [blues[0]]}).status_code == 404  # not theirs
        assert post({**body, "reason": "05"}).status_code == 400
        dry = post(body)
        assert dry.status_code == 200, dry.body
        answer = json.loads(dry.body)
        assert (answer["dry_run"], answer["count"], answer["total"]) == (True, 1, "159.00")
        refund_key = answer["items"][0]["refund_key"]
        assert red.ledger.get_order(refund_key) is None  # the dry run wrote nothing
        ran = json.loads(post({**body, "dry_run": False}).body)
        assert (ran["queued"], ran["changed_nothing"]) == (1, False)
        assert "outcome" in ran["csv"].splitlines()[0]
        again = json.loads(post({**body, "dry_run": False}).body)
        assert (again["queued"], again["unchanged"], again["changed_nothing"]) == (0, 1, True)
    record = red.ledger.get_order(refund_key)
    assert record is not None and record.payload["red_reason"] == "01"


def test_void_is_refused_for_a_digital_invoice_and_the_reminder_explains_why(issued: tuple[Red, list[str]]) -> None:
    red, blues = issued
    run = cli("invoices", "void", blues[2])
    assert run.exit_code == 1
    assert "cannot be voided" in run.output and "红字发票" in run.output
    assert red.status(blues[2]) == "issued"
    run = cli("invoices", "void-eligible", "--store", HANGZHOU.store_id)
    assert run.exit_code == 0, run.output
    assert "cannot void" in run.output


def test_orders_retry_sends_a_refund_record_round_the_red_flow_again(issued: tuple[Red, list[str]]) -> None:
    from chalicelib.domain.order_keys import order_key

    red, _ = issued
    key = order_key(SHANGHAI.store_id, "standard", "SO-never-paid", "RF-1")
    red.ledger.create_order(
        key, SHANGHAI.store_id, kind="refunded", status="refund_unmatched", payload={"event": {}}, outbox=False
    )
    run = cli("orders", "retry", key)
    assert run.exit_code == 0, run.output
    assert "red_operator_retry" in run.output
    fields = red.fields(key)
    assert fields["status"] == "red_ambiguous" and fields["operator_retry_at"]
    assert cli("orders", "retry", key).exit_code == 0  # red_ambiguous is claimable: a fresh message only
