"""Status sync against the HTTP tax sandbox (the stack of ``tests/adapters/test_red_sandbox.py``): an
invoice the platform still holds as issued is only stamped; one voided on the platform's workbench
(``POST /admin/invoices/void``) is found, moved through the state machine (``platform_voided``) and
alerted; one the platform does not know is recorded, never silently changed."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.request import Request, urlopen

import pytest

from chalicelib import wiring
from chalicelib.domain.order_keys import order_key
from chalicelib.domain.order_state import OrderStatus
from chalicelib.services import sync as sync_module
from chalicelib.services.sync import StatusSync
from tests.adapters.test_red_sandbox import Red, env  # noqa: F401 (the module-scoped stack fixture)
from tests.adapters.test_worker_sandbox import HANGZHOU, SHANGHAI
from tests.support.admin_client import cli


@pytest.fixture(scope="module")
def stack(env: Any) -> Red:  # noqa: F811
    return Red(env)


def _sync(red: Red) -> StatusSync:
    return wiring.make_status_sync(order_ledger=red.ledger, clock=red.clock.utc)


def _platform_void(red: Red, number: str) -> None:
    body = json.dumps({"number": number}).encode()
    with urlopen(Request(f"{red.sandbox.url}/admin/invoices/void", data=body, method="POST"), timeout=10) as reply:
        assert reply.status == 200


def test_an_unchanged_invoice_is_stamped_and_a_voided_one_moves_through_the_state_machine(stack: Red) -> None:
    red = stack
    sta, nuonuo = red.order(SHANGHAI), red.order(HANGZHOU)
    red.run(sta, nuonuo)
    results = {r.order_key: r for r in _sync(red).sync_keys([sta, nuonuo])}
    assert {k: r.action for k, r in results.items()} == {sta: "unchanged", nuonuo: "unchanged"}
    assert red.fields(nuonuo)["platform_status"] == "issued" and red.fields(nuonuo)["synced_at"]

    _platform_void(red, red.fields(nuonuo)["invoice_number"])
    [found] = _sync(red).sync_keys([nuonuo])
    assert (found.action, found.status, found.platform) == ("voided", "voided", "voided")
    assert red.status(nuonuo) == OrderStatus.VOIDED.value
    assert red.fields(nuonuo)["last_error"] == "voided on the platform"
    [again] = _sync(red).sync_keys([nuonuo])  # a voided record is no longer synced
    assert again.action == "skipped"


def test_a_record_the_platform_does_not_know_is_recorded_not_changed(stack: Red) -> None:
    red = stack
    key = order_key(HANGZHOU.store_id, "standard", "SO-ghost")
    red.ledger.create_order(key, HANGZHOU.store_id, kind="paid", status="issued", payload={"event": {}}, outbox=False)
    issued = frozenset({OrderStatus.ISSUED})
    red.ledger.annotate(key, fields={"serial": "EI0000GHOST0000000", "invoice_number": "1" * 20}, statuses=issued)
    [found] = _sync(red).sync_keys([key])
    assert (found.action, found.platform) == ("recorded", "missing")
    assert red.status(key) == "issued" and red.fields(key)["platform_status"] == "missing"


def test_the_sweepers_pass_syncs_stale_records_of_the_window_only(stack: Red, monkeypatch: pytest.MonkeyPatch) -> None:
    red = stack
    blue = red.order(SHANGHAI)
    red.run(blue)
    syncer = _sync(red)
    assert syncer.sweep([SHANGHAI.store_id]) >= 1
    assert red.fields(blue)["sync_source"] == "query"
    assert syncer.sweep([SHANGHAI.store_id]) == 0  # fresh: not due again for SYNC_STALE_HOURS
    monkeypatch.setattr(sync_module, "SYNC_STALE_HOURS", 0)
    red.clock.advance(timedelta(seconds=5).total_seconds())
    assert syncer.sweep([SHANGHAI.store_id], limit=1) == 1  # the batch limit holds
    assert sync_module.due_now(3600 * 5) and not sync_module.due_now(3600 * 5 + 60)


def test_the_command_line_syncs_a_store_since_a_date(stack: Red) -> None:
    red = stack
    run = cli("invoices", "sync")
    assert run.exit_code == 2  # keys or --store
    since = (red.clock.utc() - timedelta(days=1)).date().isoformat()
    run = cli("invoices", "sync", "--store", SHANGHAI.store_id, "--since", since)
    assert run.exit_code in (0, 3), run.output
    assert "synced" in run.output


def test_the_sweepers_pass_costs_one_query_per_store_and_one_write_per_record(
    stack: Red, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The AWS calls the sync adds to the sweeper (docs/issuing.md): counted, not timed."""
    from chalicelib.adapters import aws

    red = stack
    blues = [red.order(HANGZHOU) for _ in range(3)]
    red.run(*blues)
    monkeypatch.setattr(sync_module, "SYNC_STALE_HOURS", 0)
    red.clock.advance(5)
    calls: list[str] = []
    client = aws.client("dynamodb")

    def count(model: Any, **_: Any) -> None:
        calls.append(model.name)

    client.meta.events.register("before-call.dynamodb.*", count)
    try:
        synced = _sync(red).sweep([HANGZHOU.store_id])
    finally:
        client.meta.events.unregister("before-call.dynamodb.*", count)
    assert synced >= 3
    assert calls.count("Query") == 1  # the store's window, one page
    assert calls.count("UpdateItem") == synced  # one stamp per record
    assert set(calls) <= {"Query", "UpdateItem", "GetItem"}  # GetItem: the store registry (cached)
    assert "Scan" not in calls
