"""Whatever a sender can put in a signed body is answered below 500, and a hanging AWS within the deadline.

The platforms retry a 5xx for days, so a body that makes the intake fail the same way every time must
get a 4xx (or the platform's acknowledgement of a rejected order), never a 500; and their own timeouts
are a few seconds (WeChat Pay, Alipay), so an AWS that hangs must become a 503 inside them. Every
request goes through ``POST /webhooks/{platform}/{store_id}`` (``chalice.test.Client``, moto behind it),
signed as the platform signs it:

- JSON nested 100,000 deep — as the body, inside a valid event, inside the JSON strings 抖店 and 有赞
  carry — was a ``RecursionError`` past ``load_json``;
- an order id of 690 CJK characters passes a 1,000-character limit but is 2,070 bytes, over DynamoDB's
  2,048-byte key: an unmapped ``ValidationException``; ids are now bounded in bytes
  (``PaymentEvent``: 256), and a request AWS refuses as invalid is a 422 wherever it comes from;
- ``NaN`` and lone UTF-16 surrogates, which JSON parsers accept and boto3 cannot encode;
- an AWS endpoint that accepts connections and never answers (``tests/support/hanging_server.py``):
  503 within the intake deadline (5 s by default, ``INTAKE_DEADLINE_SECONDS``), not ~40 s later.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, unquote

import pytest

from chalicelib.adapters import aws as aws_clients
from tests.support import platform_events as pe
from tests.support.hanging_server import hanging_endpoint

STORE = "hostile-bodies"
DEEP = b"[" * 100_000
GATEWAY_REPLY = pe.GATEWAY_REPLY  # platforms answered in the gateway's own JSON (4xx on a refusal)


@pytest.fixture()
def route(stack: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The app in-process with a store accepting all eight platforms; the intake runs in the intake
    profile (as ``chalicelib/wiring.py`` is to give it: see ``test_the_composition_root_…`` below)."""
    from chalice.test import Client

    import app as app_module
    from chalicelib import wiring
    from chalicelib.adapters.secrets import SecretStore
    from chalicelib.adapters.stores import StoreRegistry
    from chalicelib.domain.models import Store

    StoreRegistry(stack.env["STORES_TABLE"]).put(Store.model_validate(pe.test_store(STORE)))
    secrets = SecretStore()
    for platform in pe.PLATFORMS:
        secrets.put(pe.secret_name(STORE, platform), json.dumps(pe.secret_values(platform)))

    def intake_ingest() -> Any:
        use_case = wiring.ingest()
        return use_case if aws_clients.in_scope(use_case) else aws_clients.intake(use_case)

    intake_ingest.cache_clear = wiring.reset  # type: ignore[attr-defined]
    app_module._ingest.cache_clear()
    monkeypatch.setattr(app_module, "_ingest", intake_ingest)
    with Client(app_module.app, stage_name="local") as client:
        yield client
    wiring.reset()


def post(client: Any, platform: str, body: bytes, headers: dict[str, str]) -> Any:
    return client.http.post(f"/webhooks/{platform}/{STORE}", body=body, headers=headers)


def queued(stack: Any, aws: Any) -> list[dict[str, Any]]:
    reply = aws.client("sqs").receive_message(
        QueueUrl=stack.env["ISSUE_QUEUE_URL"], MaxNumberOfMessages=10, WaitTimeSeconds=0
    )
    return [json.loads(m["Body"]) for m in reply.get("Messages", [])]


def assert_refused_below_500(response: Any, platform: str) -> None:
    """Below 500; in the gateway's own JSON a 4xx — the others acknowledge a rejected order their way."""
    body = response.body.decode() if isinstance(response.body, bytes) else response.body
    assert response.status_code < 500, (response.status_code, body[:500])
    if platform in GATEWAY_REPLY:
        assert 400 <= response.status_code < 500, (response.status_code, body[:500])


# --- signing raw bodies as each platform does (a hostile body is still a genuinely signed one) -----------
def _b64_hmac(key: bytes, data: bytes) -> str:
    return base64.b64encode(hmac.new(key, data, hashlib.sha256).digest()).decode()


def _md5(*parts: bytes) -> str:
    return hashlib.md5(b"".join(parts), usedforsecurity=False).hexdigest()


def sign_standard(body: bytes) -> dict[str, str]:
    msg_id, ts = f"msg_{uuid.uuid4().hex}", str(int(time.time()))
    key = base64.b64decode(pe.STANDARD_SECRET.removeprefix("whsec_"))
    signature = _b64_hmac(key, f"{msg_id}.{ts}.".encode() + body)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "webhook-signature": f"v1,{signature}",
    }


def sign_shopify(body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-shopify-hmac-sha256": _b64_hmac(pe.SHOPIFY_SECRET.encode(), body),
        "x-shopify-topic": "orders/paid",
        "x-shopify-webhook-id": str(uuid.uuid4()),
        "x-shopify-event-id": str(uuid.uuid4()),
    }


def sign_woocommerce(body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-wc-webhook-signature": _b64_hmac(pe.WOO_SECRET.encode(), body),
        "x-wc-webhook-topic": "order.updated",
        "x-wc-webhook-resource": "order",
        "x-wc-webhook-event": "updated",
        "x-wc-webhook-id": "12",
        "x-wc-webhook-delivery-id": uuid.uuid4().hex,
    }


def sign_stripe(body: bytes) -> dict[str, str]:
    ts = int(time.time())
    signature = hmac.new(pe.STRIPE_SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "stripe-signature": f"t={ts},v1={signature}"}


def sign_douyin(body: bytes) -> dict[str, str]:
    key, secret = pe.DOUYIN_APP_KEY, pe.DOUYIN_APP_SECRET
    return {"content-type": "application/json", "app-id": key, "event-sign": _md5(key.encode(), body, secret.encode())}


def sign_youzan(body: bytes) -> dict[str, str]:
    cid, secret = pe.YOUZAN_CLIENT_ID, pe.YOUZAN_CLIENT_SECRET
    return {
        "content-type": "application/json",
        "client-id": cid,
        "event-type": "trade_TradePaid",
        "event-sign": _md5(cid.encode(), body, secret.encode()),
    }


SIGNERS: dict[str, Callable[[bytes], dict[str, str]]] = {
    "standard": sign_standard,
    "shopify": sign_shopify,
    "woocommerce": sign_woocommerce,
    "stripe": sign_stripe,
    "douyin": sign_douyin,
    "youzan": sign_youzan,
}


# --- deeply nested JSON --------------------------------------------------------------------------------
@pytest.mark.parametrize("platform", sorted(SIGNERS))
def test_a_signed_body_of_deeply_nested_json_is_refused_not_a_500(route: Any, platform: str) -> None:
    response = post(route, platform, DEEP, SIGNERS[platform](DEEP))
    assert_refused_below_500(response, platform)


def test_deep_nesting_inside_a_valid_event_is_refused_not_a_500(route: Any) -> None:
    head = b'{"type": "order.paid", "data": {"order_id": "deep-1", "amount": "88.00", "currency": "CNY", "lines": '
    body = head + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    response = post(route, "standard", body, sign_standard(body))
    assert response.status_code == 422, response.body
    assert "nested deeper than 64" in response.body.decode()


def test_nesting_within_the_limit_is_read(route: Any) -> None:
    """64 levels are JSON like any other (the event is then refused for its shape, not its depth)."""
    body = b'{"type": "order.paid", "data": {"x": ' + b"[" * 60 + b"]" * 60 + b"}}"
    response = post(route, "standard", body, sign_standard(body))
    assert response.status_code == 422 and "nested" not in response.body.decode(), response.body


def test_deep_json_in_a_douyin_data_string_is_refused_not_a_500(route: Any) -> None:
    """抖店 carries each message's data as a JSON string, parsed after the body."""
    messages = [{"tag": "101", "msg_id": f"m-{uuid.uuid4().hex}", "data": "[" * 100_000}]
    body = json.dumps(messages, separators=(",", ":")).encode()
    assert_refused_below_500(post(route, "douyin", body, sign_douyin(body)), "douyin")


def test_deep_json_in_a_youzan_invoice_title_is_refused_not_a_500(route: Any) -> None:
    """有赞 may carry the invoice title (invoice_info) as a JSON string inside its URL-encoded msg."""
    body, _ = pe.paid("youzan", f"yz-{uuid.uuid4().hex[:8]}")
    envelope = json.loads(body)
    msg = json.loads(unquote(envelope["msg"]))
    msg.setdefault("full_order_info", {})["invoice_info"] = "[" * 20_000  # URL-encoded: 3 bytes each
    envelope["msg"] = quote(json.dumps(msg, ensure_ascii=False, separators=(",", ":")), safe="")
    raw = json.dumps(envelope, ensure_ascii=False).encode()
    assert_refused_below_500(post(route, "youzan", raw, sign_youzan(raw)), "youzan")


# --- ids too long for a key, in bytes --------------------------------------------------------------------
@pytest.mark.parametrize("platform", pe.PLATFORMS)
def test_an_order_id_of_690_cjk_characters_is_refused_not_a_500(
    route: Any, stack: Any, aws: Any, platform: str
) -> None:
    """2,070 bytes: within 1,000 characters, over DynamoDB's 2,048-byte key. Nothing is queued."""
    body, headers = pe.paid(platform, "单" * 690)
    response = post(route, platform, body, headers)
    assert_refused_below_500(response, platform)
    if platform in GATEWAY_REPLY:
        assert "256" in response.body.decode() or "bytes" in response.body.decode(), response.body
    assert queued(stack, aws) == []


@pytest.mark.parametrize("platform", pe.PLATFORMS)
def test_an_order_id_of_255_bytes_is_accepted(route: Any, stack: Any, aws: Any, platform: str) -> None:
    body, headers = pe.paid(platform, "单" * 85)  # 255 bytes in UTF-8
    response = post(route, platform, body, headers)
    assert response.status_code in (200, 202), response.body
    assert [m["order_key"].endswith("单" * 85) for m in queued(stack, aws)] == [True]


def test_a_request_aws_refuses_as_invalid_is_a_422_not_a_500(
    route: Any, stack: Any, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backstop, whatever lets such an id through: without the byte bound, the ledger's
    ValidationException (key over 2,048 bytes) is a 422 ``request_refused``, not an unmapped 500."""
    from chalicelib.domain import models
    from chalicelib.webhooks import base

    monkeypatch.setattr(models, "MAX_ID_BYTES", 10**6)
    monkeypatch.setattr(base, "MAX_ID_BYTES", 10**6)
    body, headers = pe.paid("standard", "单" * 690)
    response = post(route, "standard", body, headers)
    assert response.status_code == 422, response.body
    answer = json.loads(response.body)
    assert answer["error"] == "request_refused" and "ValidationException" in answer["errors"][0]["message"]
    assert queued(stack, aws) == []


def test_a_store_id_too_long_for_a_key_is_not_a_500(route: Any) -> None:
    response = route.http.post(
        "/webhooks/standard/" + "店" * 700, body=b"{}", headers={"content-type": "application/json"}
    )
    assert response.status_code < 500, response.body


# --- values JSON parsers accept and AWS cannot take ------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [
        b'"order_id": "lone-\\ud800", "amount": "88.00"',  # an escaped lone surrogate
        b'"order_id": "lone-\xed\xa0\x80", "amount": "88.00"',  # a UTF-8-encoded one
        b'"order_id": "nan-1", "amount": NaN',
        b'"order_id": "inf-1", "amount": Infinity',
        b'"order_id": "ok-1", "amount": "88.00", "buyer": {"title": "\\udc00"}',
    ],
    ids=["escaped-surrogate", "encoded-surrogate", "nan", "infinity", "surrogate-in-title"],
)
def test_values_no_encoder_accepts_are_refused_not_a_500(route: Any, stack: Any, aws: Any, data: bytes) -> None:
    body = b'{"type": "order.paid", "data": {' + data + b', "currency": "CNY"}}'
    response = post(route, "standard", body, sign_standard(body))
    assert response.status_code == 422, response.body
    assert queued(stack, aws) == []


# --- a hanging AWS ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("deadline", ["", "2"], ids=["default-5s", "configured-2s"])
def test_a_hanging_aws_is_answered_503_within_the_intake_deadline(
    route: Any, monkeypatch: pytest.MonkeyPatch, deadline: str
) -> None:
    """Every AWS endpoint accepts the connection and never answers: the intake's short timeouts, its
    one retry and its deadline answer 503 (Retry-After) within the deadline — not after the worker's
    3 s + 10 s × 4 attempts."""
    monkeypatch.setenv("INTAKE_DEADLINE_SECONDS", deadline)
    limit = aws_clients.intake_deadline_seconds()
    body, headers = pe.paid("standard", f"hang-{uuid.uuid4().hex[:8]}")
    with hanging_endpoint() as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        aws_clients.reset()  # clients are built again, against the hanging endpoint
        try:
            started = time.monotonic()
            response = post(route, "standard", body, headers)
            elapsed = time.monotonic() - started
        finally:
            aws_clients.reset()
    assert response.status_code == 503, response.body
    assert response.headers.get("Retry-After") == "30"
    assert elapsed <= limit, f"answered after {elapsed:.2f} s, the deadline is {limit} s"


def test_the_composition_root_runs_the_intake_in_the_intake_profile(stack: Any) -> None:
    from chalicelib import wiring

    wiring.reset()
    try:
        assert aws_clients.in_scope(wiring.ingest())
    finally:
        wiring.reset()
