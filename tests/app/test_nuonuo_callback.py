"""``POST /callbacks/nuonuo/{store_id}`` in-process (chalice.test.Client) over the moto stack and the HTTP
tax sandbox of ``tests/adapters/test_red_sandbox.py``: a callback is verified before anything is read
(a bad or missing signature is refused and changes nothing), then applied through the state machine
and answered in Nuonuo's envelope."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.services.sync import CALLBACK_SIGN_HEADER, callback_signature
from tests.adapters.test_red_sandbox import Red, env  # noqa: F401 (the module-scoped stack fixture)
from tests.adapters.test_worker_sandbox import HANGZHOU, SECRETS, SHANGHAI

APP_SECRET = SECRETS["einvoice/demo-hangzhou/nuonuo"]["app_secret"]


@pytest.fixture(scope="module")
def issued(env: Any) -> tuple[Red, str]:  # noqa: F811
    red = Red(env)
    blue = red.order(HANGZHOU)
    red.run(blue)
    assert red.status(blue) == "issued"
    return red, blue


@pytest.fixture()
def client(issued: tuple[Red, str]) -> Iterator[Any]:
    from chalice.test import Client

    import app as app_module

    with Client(app_module.app, stage_name="local") as c:
        yield c


def _item(red: Red, blue: str, status: str, **extra: str) -> dict[str, Any]:
    f = red.fields(blue)
    return {
        "orderNo": f["serial"],
        "status": status,
        "allElectronicInvoiceNumber": f["invoice_number"],
        "invoiceType": "1",
        **extra,
    }


def _post(client: Any, store: str, body: bytes, signature: str | None) -> Any:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[CALLBACK_SIGN_HEADER] = signature
    return client.http.post(f"/callbacks/nuonuo/{store}", headers=headers, body=body)


def test_a_callback_with_a_bad_or_missing_signature_is_refused_and_changes_nothing(
    client: Any, issued: tuple[Red, str]
) -> None:
    red, blue = issued
    body = json.dumps(_item(red, blue, "3")).encode()
    for signature in (None, "", callback_signature("not-the-secret", body), callback_signature(APP_SECRET, b"x")):
        reply = _post(client, HANGZHOU.store_id, body, signature)
        assert reply.status_code == 401, reply.body
        assert json.loads(reply.body)["code"] == "E0001"
    # a store that does not issue through Nuonuo accepts no Nuonuo callback
    assert _post(client, SHANGHAI.store_id, body, callback_signature(APP_SECRET, body)).status_code == 401
    assert red.status(blue) == "issued" and "synced_at" not in red.fields(blue)


def test_a_verified_callback_is_applied_through_the_state_machine(client: Any, issued: tuple[Red, str]) -> None:
    red, blue = issued
    same = json.dumps(_item(red, blue, "2")).encode()
    reply = _post(client, HANGZHOU.store_id, same, callback_signature(APP_SECRET, same))
    assert reply.status_code == 200, reply.body
    assert json.loads(reply.body) == {"code": "E0000", "describe": "成功", "applied": ["unchanged"]}
    assert red.fields(blue)["sync_source"] == "callback"

    # a red invoice we never asked for reverses our blue: recorded on the blue and alerted, not applied
    red_number = "2" * 20
    stranger = {
        "orderNo": "EI-NOT-OURS-000001",
        "status": "2",
        "allElectronicInvoiceNumber": red_number,
        "invoiceType": "2",
        "oldEleInvoiceNumber": red.fields(blue)["invoice_number"],
    }
    body = json.dumps([stranger]).encode()
    reply = _post(client, HANGZHOU.store_id, body, callback_signature(APP_SECRET, body))
    assert json.loads(reply.body)["applied"] == ["recorded"]
    assert red.fields(blue)["external_reds"] == red_number and red.status(blue) == "issued"
    # … and against a blue invoice we do not hold: alerted, never dropped
    body = json.dumps({**stranger, "oldEleInvoiceNumber": "3" * 20}).encode()
    reply = _post(client, HANGZHOU.store_id, body, callback_signature(APP_SECRET, body))
    assert json.loads(reply.body)["applied"] == ["alerted"]

    voided = json.dumps(_item(red, blue, "3")).encode()
    reply = _post(client, HANGZHOU.store_id, voided, callback_signature(APP_SECRET, voided))
    assert json.loads(reply.body)["applied"] == ["voided"]
    assert red.status(blue) == "voided"
