"""The audit archive's credential exchanges and the intake's steps, on the round trip's stack.

Reuses the module-scoped world of ``test_archive_roundtrip`` (moto, the HTTP tax sandbox, four orders
issued through the worker, one of them by Nuonuo, which fetches its access token first): the token
request leaves a ``token`` record with its bodies hashed and masked, no archived line anywhere holds
the app secret, an access token or a signature, and each issued order's archived history starts with
the intake's ``received``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from urllib.parse import parse_qsl, urlsplit

from chalicelib.audit import records
from chalicelib.taxapi.base import Credentials
from chalicelib.taxapi.nuonuo_wire import sign
from chalicelib.taxapi.tokens import build_token_request
from tests.adapters.test_archive_roundtrip import TODAY, World, objects_of, world  # noqa: F401 (the fixture)
from tests.adapters.test_worker_sandbox import HANGZHOU, SECRETS, SHANGHAI

NUONUO = SECRETS["einvoice/demo-hangzhou/nuonuo"]


def _lines(w: World, store: str, stream: str) -> list[dict[str, object]]:
    return [line for key in objects_of(w, store, TODAY, stream) for line in records.decode_lines(w.archive.get(key))]


def _every_archived_text(w: World) -> str:
    """Every object of the bucket, decompressed (the manifests are JSON already), and every base64
    body in it decoded (a secret must not hide in the bytes kept either)."""
    texts = []
    for key, _ in w.archive.listing(""):
        body = w.archive.get(key)
        texts.append(gzip.decompress(body).decode("utf-8") if key.endswith(".gz") else body.decode("utf-8"))
        if key.endswith(".gz"):
            for r in records.decode_lines(body):
                if "kind" in r and r["kind"] == "interaction":
                    for b64 in (r["request_body_b64"], (r["response"] or {}).get("body_b64")):
                        texts.append(base64.b64decode(b64).decode("utf-8", "replace") if b64 else "")
    return "\n".join(texts)


def test_the_nuonuo_token_request_leaves_a_token_record_without_its_bytes(world: World) -> None:  # noqa: F811
    assert world.failed == []
    lines = _lines(world, HANGZHOU.store_id, "interactions")
    [token] = [r for r in lines if str(r["operation"]).startswith("token")]
    assert token["operation"] == "token:nuonuo.accessToken" and token["provider"] == "nuonuo"
    assert token["outcome"] == "ok" and token["actor"] == "worker:local" and token["latency_ms"] >= 0  # type: ignore[operator]
    assert token["request_body_b64"] is None
    form = token["request"]["form"]  # type: ignore[index]
    assert form == {
        "client_id": NUONUO["app_key"],
        "client_secret": records.REDACTED,
        "grant_type": "client_credentials",
    }
    # the SHA-256 of the exact body sent: an inspector can match it, nobody can read the secret from it
    sent = build_token_request(Credentials(dict(NUONUO)), "http://x/accessToken").body
    assert token["request_body_sha256"] == hashlib.sha256(sent).hexdigest()
    response = token["response"]
    assert response["status"] == 200 and response["body_b64"] is None  # type: ignore[index]
    assert response["body"]["access_token"] == records.REDACTED and response["body"]["expires_in"]  # type: ignore[index]
    assert len(response["body_sha256"]) == 64  # type: ignore[index]
    # the token came before the calls that used it, in the same invocation's object
    assert lines.index(token) < next(i for i, r in enumerate(lines) if str(r["operation"]).startswith("issue"))


def test_no_archived_line_holds_a_secret_a_token_or_a_signature(world: World) -> None:  # noqa: F811
    text = _every_archived_text(world)
    tokens = list(world.sandbox.state.tokens)
    assert tokens, "the sandbox handed out no token: the worker did not fetch one"
    signatures = []
    for r in _lines(world, HANGZHOU.store_id, "interactions"):
        if r["request_body_b64"] is None or str(r["operation"]).startswith("token"):
            continue
        query = dict(parse_qsl(urlsplit(str(r["request"]["url"])).query))  # type: ignore[index]
        body = base64.b64decode(str(r["request_body_b64"]))
        signatures.append(
            sign(NUONUO["app_key"], NUONUO["app_secret"], senid=query["senid"], nonce=query["nonce"],
                 timestamp=query["timestamp"], body=body)
        )  # fmt: skip
    assert signatures
    for value in (NUONUO["app_secret"], *tokens, *signatures):
        assert value not in text
    sta = SECRETS["einvoice/demo-shanghai/sta"]
    assert sta["sm4_key"] not in text and sta["sign_key"] not in text


def test_an_issued_orders_archived_history_starts_at_received(world: World) -> None:  # noqa: F811
    for store, keys in ((SHANGHAI.store_id, world.order_keys[:3]), (HANGZHOU.store_id, world.order_keys[3:])):
        lines = _lines(world, store, "transitions")
        for order_key in keys:
            mine = [r for r in lines if r["order_key"] == order_key]
            steps = [(r["event"], r["from"], r["to"]) for r in mine]
            assert steps[:3] == [
                ("received", None, "received"),
                ("enqueued", "received", "queued"),
                ("claim", "queued", "issuing"),
            ]
            assert steps[-1][2] == "issued"
            assert [r["actor"] for r in mine[:2]] == ["intake", "intake"]
            assert {r["actor"] for r in mine[2:]} == {"worker:local"}
            times = [str(r["time"]) for r in mine]
            assert times == sorted(times)
