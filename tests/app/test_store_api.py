"""The shop platforms' invoice API: a store's key, its isolation, rotation, hashed storage, presigned files."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest
from typer.testing import CliRunner

from tests.support import invoices
from tests.support.admin_client import header

A, B = "demo-shanghai", "demo-hangzhou"
LINES = [("3070401000000000000", "88.00")]


def _path(store: str, order_id: str, query: str = "") -> str:
    return f"/stores/{store}/orders/{order_id}/invoice" + (f"?{query}" if query else "")


def _get(client: Any, path: str, key: str | None = None, **headers: str) -> Any:
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return client.http.get(path, headers=headers)


def _cli(*args: str, input: str | None = None) -> Any:
    import infra.cli_app

    return CliRunner().invoke(infra.cli_app.application(), list(args), input=input)


@pytest.fixture()
def world(client: Any) -> Iterator[dict[str, Any]]:
    """Two stores with keys (made by the CLI), an issued order of each (A's with a PDF in the bucket)."""
    from chalicelib import wiring
    from chalicelib.adapters import aws
    from chalicelib.config import settings

    wiring.reset()
    keys = {}
    for store in (A, B):
        run = _cli("stores", "api-key", store)
        assert run.exit_code == 0, run.output
        keys[store] = run.stdout.strip()
    ledger = wiring.ledger()
    pdf_key = f"{A}/2026/12/02/invoice.pdf"
    aws.client("s3").put_object(Bucket=settings().invoice_bucket, Key=pdf_key, Body=b"%PDF-1.7 test")
    a_id, a_key = invoices.issue(ledger, None, A, LINES, fields={"pdf_key": pdf_key})
    b_id, _ = invoices.issue(ledger, None, B, LINES, order_id="SAME-ID-AS-NOTHING")
    yield {"keys": keys, "a_id": a_id, "a_key": a_key, "b_id": b_id, "pdf_key": pdf_key, "ledger": ledger}
    wiring.reset()


def test_own_key_reads_own_invoice(client: Any, world: dict[str, Any]) -> None:
    r = _get(client, _path(A, world["a_id"]), world["keys"][A])
    assert r.status_code == 200, r.body
    body = json.loads(r.body)
    assert body["status"] == "issued"
    assert body["order_key"] == world["a_key"]
    assert len(body["invoice_number"]) == 20
    assert body["amount"] == "88.00"
    assert body["issued_date"] and "files" not in body
    # the same with X-Api-Key, and with an explicit platform
    r2 = _get(client, _path(A, world["a_id"], "platform=standard"), **{"X-Api-Key": world["keys"][A]})
    assert json.loads(r2.body)["invoice_number"] == body["invoice_number"]


def test_files_are_presigned_on_request(client: Any, world: dict[str, Any]) -> None:
    import urllib.request

    body = json.loads(_get(client, _path(A, world["a_id"], "files=1"), world["keys"][A]).body)
    pdf = body["files"]["pdf"]
    assert pdf["expires_in"] == 300
    url = urlparse(pdf["url"])
    assert (url.path.endswith(world["pdf_key"]) and "Signature" in url.query) or "X-Amz-Signature" in url.query
    with urllib.request.urlopen(pdf["url"], timeout=10) as got:  # the presigned GET works against the bucket
        assert got.read().startswith(b"%PDF")


def test_another_stores_key_gets_404_and_no_data(client: Any, world: dict[str, Any]) -> None:
    wrong = _get(client, _path(A, world["a_id"]), world["keys"][B])
    missing = _get(client, _path(A, "NO-SUCH-ORDER"), world["keys"][A])
    assert wrong.status_code == 404
    assert json.loads(wrong.body) == json.loads(missing.body)  # the same answer as an order that does not exist
    assert world["a_id"] not in wrong.body.decode() and "invoice_number" not in wrong.body.decode()
    # B's own order with A's key: the same 404
    assert _get(client, _path(B, world["b_id"]), world["keys"][A]).status_code == 404


@pytest.mark.parametrize("key", [None, "", "garbage", "ek_demo-shanghai_" + "x" * 43])
def test_no_or_invalid_key_on_own_store_is_401(client: Any, world: dict[str, Any], key: str | None) -> None:
    r = _get(client, _path(A, world["a_id"]), key)
    assert r.status_code == 401
    body = json.loads(r.body)
    assert body["error"] == "unauthorized" and body["message"] and body["message_en"]
    assert header(r, "www-authenticate").startswith("Bearer")
    assert "invoice_number" not in r.body.decode()


def test_unknown_store_answers_like_a_wrong_key(client: Any, world: dict[str, Any]) -> None:
    forged = "ek_no-such-store_" + "y" * 43
    assert _get(client, _path("no-such-store", "X"), forged).status_code == 401
    assert _get(client, _path("no-such-store", "X")).status_code == 401


def test_rotation_keeps_the_old_key_for_the_grace_period(client: Any, world: dict[str, Any]) -> None:
    from chalicelib import wiring

    old = world["keys"][A]
    refused = _cli("stores", "api-key", A)  # a second key without --rotate is refused
    assert refused.exit_code == 2
    run = _cli("stores", "api-key", A, "--rotate")
    assert run.exit_code == 0, run.output
    new = run.stdout.strip()
    assert new != old and new.startswith(f"ek_{A}_")
    for key in (old, new):
        assert _get(client, _path(A, world["a_id"]), key).status_code == 200
    # without a grace period the old key stops at once
    run = _cli("stores", "api-key", A, "--rotate", "--grace-hours", "0")
    newest = run.stdout.strip()
    assert _get(client, _path(A, world["a_id"]), new).status_code == 401
    assert _get(client, _path(A, world["a_id"]), newest).status_code == 200
    # and the grace period ends: the store's previous key is refused once its time has passed
    keys = wiring.store_keys()
    record = keys.store.get_api_key(A)
    assert record is not None and record.previous_hash is None


def test_grace_period_expires() -> None:
    from chalicelib.services.auth import KeyCheck, StoreKeys
    from tests.support.fake_auth import FakeAuthStore

    now = [1000.0]
    keys = StoreKeys(FakeAuthStore(), clock=lambda: now[0])
    old = keys.issue("s1", rotate=False)
    new = keys.issue("s1", rotate=True, grace_seconds=60)
    assert keys.check("s1", old) == KeyCheck.VALID
    now[0] += 61
    assert keys.check("s1", old) == KeyCheck.INVALID
    assert keys.check("s1", new) == KeyCheck.VALID


def test_the_table_never_holds_a_key(client: Any, world: dict[str, Any]) -> None:
    from chalicelib.adapters import aws
    from chalicelib.config import settings

    key = world["keys"][A]
    assert len(key.removeprefix(f"ek_{A}_")) >= 43  # 32 random bytes, URL-safe base64
    items = aws.client("dynamodb").scan(TableName=settings().ledger_table)["Items"]  # the test may scan
    stored = json.dumps(items, default=str)
    assert key not in stored and key.split("_", 2)[2] not in stored
    assert hashlib.sha256(key.encode()).hexdigest() in stored


def test_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.services import auth
    from tests.support.fake_auth import FakeAuthStore

    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the module auth.py compares through
    keys = auth.StoreKeys(FakeAuthStore(), clock=lambda: 0.0)
    key = keys.issue("s1", rotate=False)
    assert keys.check("s1", key) == auth.KeyCheck.VALID
    assert keys.check("s1", key[:-1] + ("A" if key[-1] != "A" else "B")) == auth.KeyCheck.INVALID
    assert len(calls) == 2  # every check compares through hmac.compare_digest, never ==


def test_ambiguous_order_id_across_platforms(client: Any, world: dict[str, Any]) -> None:
    ledger = world["ledger"]
    invoices.issue(ledger, None, A, LINES, platform="standard", order_id="TWICE")
    invoices.issue(ledger, None, A, LINES, platform="wechatpay", order_id="TWICE")
    r = _get(client, _path(A, "TWICE"), world["keys"][A])
    assert r.status_code == 409 and sorted(json.loads(r.body)["platforms"]) == ["standard", "wechatpay"]
    one = _get(client, _path(A, "TWICE", "platform=wechatpay"), world["keys"][A])
    assert json.loads(one.body)["platform"] == "wechatpay"
    assert _get(client, _path(A, "TWICE", "platform=shopify"), world["keys"][A]).status_code == 404


def test_other_methods_are_405_and_the_route_is_not_shadowed(client: Any, world: dict[str, Any]) -> None:
    r = client.http.post(_path(A, world["a_id"]), headers={"Authorization": f"Bearer {world['keys'][A]}"}, body=b"")
    assert r.status_code == 405 and header(r, "allow") == "GET"


def test_require_store_key_for_other_routes(client: Any, world: dict[str, Any]) -> None:
    from types import SimpleNamespace

    from chalicelib.domain.errors import NotFound
    from chalicelib.routes.auth import require_store_key
    from chalicelib.services.auth import Unauthorized

    def request(key: str | None) -> Any:
        return SimpleNamespace(headers={} if key is None else {"authorization": f"Bearer {key}"})

    require_store_key(request(world["keys"][A]), A)  # no exception: the store's own key
    with pytest.raises(NotFound):
        require_store_key(request(world["keys"][B]), A)
    for key in (None, "ek_demo-shanghai_" + "z" * 43):
        with pytest.raises(Unauthorized):
            require_store_key(request(key), A)
